"""The generation step: compose a training set, train, sample, evaluate, record.

The Snakemake rule ``generation`` and the ``dvc repro`` stage ``chain@<run>`` both call
:func:`run_generation`, so the two tools write byte-identical artifacts. The step is
deterministic in its settings and seed. (The other steps: ``human``, ``results``,
``ensemble_step``, ``plots``, ``report``.)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from modelcollapse import io, tables
from modelcollapse.families import get_family
from modelcollapse.human import data_columns, load_truth
from modelcollapse.lineage.ledger import record_generation
from modelcollapse.manifest import cached_md5, composition, load_training_set
from modelcollapse.paths import gen_file, human_file
from modelcollapse.regimes import compose_training_set
from modelcollapse.settings import RunSettings

log = logging.getLogger("modelcollapse")

# Independent random streams: one per generation step, one for the ensemble
# (modelcollapse.ensemble_step).
_GENERATION_STREAM = 1


def generation_rng(seed: int, generation: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(_GENERATION_STREAM, generation))


def run_generation(
    run: str,
    generation: int,
    settings: RunSettings,
    root: str | Path = ".",
    key: str | None = None,
    code_fingerprint: str | None = None,
) -> dict[str, Any]:
    """Compose, train, sample, evaluate: one generation step of one run.

    Writes train.json, model.safetensors (+ model.json), samples.parquet and
    metrics.json into the generation's directory, then (last) its ledger record,
    and returns the metrics. ``key`` (:meth:`modelcollapse.keys.Keys.generation`) is
    recorded in model.json and the ledger record, the step's ``code_fingerprint`` in
    the record: what makes the outputs up to date for ``modelcollapse.plan``.

    The family's optional members (:class:`~modelcollapse.families.base.Family`):
    ``same_init``: every generation starts from the same initialisation
    (``build_model(..., init_seed=<run seed>)``); ``needs_prompts``: ``sample`` is
    given ``prompts=`` the human rows generation 0 trained on; ``annotate_samples``:
    per-row columns from the generation-0 model, which ``evaluate`` gets as
    ``reference=``.
    """
    root = Path(root)
    fam = get_family(settings.family)
    n = settings.samples_per_generation
    # Generation 0 is the run's root's: written under its name, recording only the
    # settings it depends on, so every run that shares it finds the same files.
    chain = settings.chain(run, generation)
    recorded = settings.root_dict() if generation == 0 else settings.generation_dict()
    if generation == 1:
        _drop_own_generation_zero(run, root)
    compose_seq, fit_seq, sample_seq = generation_rng(settings.seed, generation).spawn(3)
    started = time.perf_counter()
    with threadpool_limits(1):  # BLAS threads would make float reductions order-dependent
        manifest = compose_training_set(
            run, generation, settings, np.random.default_rng(compose_seq), root
        )
        train = load_training_set(manifest, root)
        manifest["composition"] = composition(manifest, root)
        truth = load_truth(fam, settings.human, root)
        random_state = int(fit_seq.generate_state(1)[0])
        extra_init = {"init_seed": settings.seed} if fam.same_init else {}
        model = fam.build_model(settings.options, truth, random_state, **extra_init)
        # The human data's columns: synthetic rows may carry annotations besides them.
        test = io.read_table(human_file(settings.human, "test.parquet", root))
        columns = data_columns(test)
        model.fit(train.select(columns))
        model_path = gen_file(chain, generation, "model.safetensors", root)
        io.write_json(gen_file(chain, generation, "train.json", root), manifest)
        model.save(
            model_path,
            extra={
                "run": chain,
                "generation": generation,
                "settings": recorded,
                "random_state": random_state,
                "key": key,
            },
        )
        sample_kwargs = {}
        if fam.needs_prompts:
            pool = io.read_table(human_file(settings.human, "pool.parquet", root))
            sample_kwargs["prompts"] = pool.slice(0, n).select(data_columns(pool))
        samples = model.sample(n, np.random.default_rng(sample_seq), **sample_kwargs)
        eval_kwargs = {}
        if fam.annotate_samples is not None:
            reference = (
                model
                if generation == 0
                else fam.load_model(gen_file(settings.root, 0, "model.safetensors", root))
            )
            samples = fam.annotate_samples(samples, reference)
            eval_kwargs["reference"] = reference
        samples = tables.with_columns(
            samples,
            source="synthetic",
            origin_generation=np.int64(generation),
            model_md5=cached_md5(model_path),
        )
        io.write_table(gen_file(chain, generation, "samples.parquet", root), samples)
        metrics = fam.evaluate(
            model, truth, test.select(columns), samples.select(data_columns(samples)), **eval_kwargs
        )
    metrics = {
        "generation": generation,
        **{k: float(v) for k, v in metrics.items()},
        "train_rows": int(len(train)),
        "train_human_fraction": float(manifest["composition"]["human_fraction"]),
    }
    io.write_json(gen_file(chain, generation, "metrics.json", root), metrics)
    record_generation(
        chain, generation, recorded, root, key, code_fingerprint
    )  # the ledger, written last
    log.info(
        "%s generation %d: trained on %d rows in %.3fs",
        f"run {run}" if chain == run else f"{chain} (run {run}'s root)",
        generation,
        len(train),
        time.perf_counter() - started,
    )
    return metrics


def _drop_own_generation_zero(run: str, root: Path) -> None:
    """Remove a generation 0 of the run's own (data/runs/<run>/gen_0000 and its ledger
    record), left by a version of the workflow before roots: the run's generation 0 is
    its root's now, and a stale copy would only mislead a reader."""
    import shutil

    from modelcollapse.lineage.ledger import record_path

    own = gen_file(run, 0, "x", root).parent
    if own.is_dir():
        log.info("run %s: removing %s (generation 0 is the run's root's now)", run, own)
        shutil.rmtree(own)
    record_path(run, 0, root).unlink(missing_ok=True)
