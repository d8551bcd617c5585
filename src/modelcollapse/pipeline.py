"""The steps of the workflow, shared by the Snakemake rules and the DVC stages.

Both tools call these functions, so `snakemake` and `dvc repro` write
byte-identical artifacts. Each step is deterministic in its settings and seed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from modelcollapse import io
from modelcollapse.families import get_family
from modelcollapse.lineage import record_generation
from modelcollapse.manifest import (
    PROVENANCE_COLUMNS,
    cached_md5,
    composition,
    load_training_set,
)
from modelcollapse.paths import gen_file, human_dir, human_file, results_dir
from modelcollapse.regimes import compose_training_set

log = logging.getLogger("modelcollapse")

# Independent random streams: one per generation step, one for the ensemble.
_GENERATION_STREAM = 1
_ENSEMBLE_STREAM = 2


def generation_rng(seed: int, generation: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(_GENERATION_STREAM, generation))


def prepare_human(source: str, spec: dict[str, Any], root: str | Path = ".") -> None:
    """Write a human source's pool and test split into data/human/<source>/.

    A statistical family draws them from its known true distribution (saved as
    truth.safetensors); a family on real data (one that defines
    ``load_human(spec, out_dir, rng) -> (pool, test, origin_path)``) reads its
    corpus and writes what it needs beside them (a tokenizer, a description).
    Every row's ``origin_md5`` is the md5 of the truth or of that description.
    """
    family = get_family(spec["family"])
    rng = np.random.default_rng(np.random.SeedSequence(spec["seed"]))
    out_dir = human_dir(source, root)
    with threadpool_limits(1):
        if hasattr(family, "load_human"):
            pool, test, origin = family.load_human(spec, out_dir, rng)
        else:
            truth = family.truth_from_spec(spec["truth"])
            origin = human_file(source, "truth.safetensors", root)
            truth.save(origin, extra={"source": source, "spec": spec})
            pool = truth.sample(spec["pool_size"], rng)
            test = truth.sample(spec["test_size"], rng)
    origin_md5 = io.file_md5(origin)
    for name, frame in (("pool.parquet", pool), ("test.parquet", test)):
        frame = frame.assign(source="human", origin_generation=np.int64(-1), origin_md5=origin_md5)
        io.write_table(human_file(source, name, root), frame)


def load_truth(fam: ModuleType, source: str, root: str | Path = ".") -> Any:
    """What a family knows of its human source: the true distribution, or (for real
    data) whatever its ``load_truth(human_dir)`` returns (a tokenizer, sizes)."""
    if hasattr(fam, "load_truth"):
        return fam.load_truth(human_dir(source, root))
    return fam.Model.load(human_file(source, "truth.safetensors", root))


def data_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in PROVENANCE_COLUMNS and c != "model_md5"]


def run_generation(
    run: str, generation: int, settings: dict[str, Any], root: str | Path = "."
) -> dict[str, Any]:
    """Compose, train, sample, evaluate: one generation step of one run.

    Writes train.json, model.safetensors (+ model.json), samples.parquet and
    metrics.json into the generation's directory and returns the metrics.

    Optional family hooks (module attributes):
    ``SAME_INIT``: every generation starts from the same initialisation
    (``build_model(..., init_seed=<run seed>)``); ``NEEDS_PROMPTS``: ``sample`` is
    given ``prompts=`` the human rows generation 0 trained on; ``NEEDS_REFERENCE``:
    ``annotate_samples(samples, reference)`` and ``evaluate(..., reference=)`` get
    the generation-0 model.
    """
    root = Path(root)
    fam = get_family(settings["family"])
    n = settings["samples_per_generation"]
    compose_seq, fit_seq, sample_seq = generation_rng(settings["seed"], generation).spawn(3)
    started = time.perf_counter()
    with threadpool_limits(1):  # BLAS threads would make float reductions order-dependent
        manifest = compose_training_set(
            run, generation, settings, np.random.default_rng(compose_seq), root
        )
        train = load_training_set(manifest, root)
        manifest["composition"] = composition(manifest, root)
        truth = load_truth(fam, settings["human"], root)
        random_state = int(fit_seq.generate_state(1)[0])
        extra_init = {"init_seed": settings["seed"]} if getattr(fam, "SAME_INIT", False) else {}
        model = fam.build_model(settings["options"], truth, random_state, **extra_init)
        # The human data's columns: synthetic rows may carry annotations besides them.
        test = io.read_table(human_file(settings["human"], "test.parquet", root))
        columns = data_columns(test)
        model.fit(train[columns])
        model_path = gen_file(run, generation, "model.safetensors", root)
        io.write_json(gen_file(run, generation, "train.json", root), manifest)
        model.save(
            model_path,
            extra={
                "run": run,
                "generation": generation,
                "settings": settings,
                "random_state": random_state,
            },
        )
        sample_kwargs = {}
        if getattr(fam, "NEEDS_PROMPTS", False):
            pool = io.read_table(human_file(settings["human"], "pool.parquet", root))
            sample_kwargs["prompts"] = pool.iloc[:n][data_columns(pool)]
        samples = model.sample(n, np.random.default_rng(sample_seq), **sample_kwargs)
        eval_kwargs = {}
        if getattr(fam, "NEEDS_REFERENCE", False):
            reference = (
                model
                if generation == 0
                else fam.Model.load(gen_file(run, 0, "model.safetensors", root))
            )
            samples = fam.annotate_samples(samples, reference)
            eval_kwargs["reference"] = reference
        samples = samples.assign(
            source="synthetic",
            origin_generation=np.int64(generation),
            model_md5=cached_md5(model_path),
        )
        io.write_table(gen_file(run, generation, "samples.parquet", root), samples)
        metrics = fam.evaluate(
            model, truth, test[columns], samples[data_columns(samples)], **eval_kwargs
        )
    metrics = {
        "generation": generation,
        **{k: float(v) for k, v in metrics.items()},
        "train_rows": int(len(train)),
        "train_human_fraction": float(manifest["composition"]["human_fraction"]),
    }
    io.write_json(gen_file(run, generation, "metrics.json", root), metrics)
    record_generation(run, generation, settings, root)  # the git-tracked lineage ledger
    log.info(
        "run %s generation %d: trained on %d rows in %.2fs",
        run,
        generation,
        len(train),
        time.perf_counter() - started,
    )
    return metrics


def collect_metrics(run: str, generations: int, root: str | Path = ".") -> pd.DataFrame:
    """results/<run>/metrics.csv (one row per generation) and summary.json (the last)."""
    rows = [io.read_json(gen_file(run, g, "metrics.json", root)) for g in range(generations)]
    frame = pd.DataFrame(rows)
    frame = frame[["generation"] + sorted(c for c in frame.columns if c != "generation")]
    out = results_dir(run, root)
    io.write_text(out / "metrics.csv", frame.to_csv(index=False, float_format="%.10g"))
    io.write_json(out / "summary.json", {"run": run, **rows[-1]})
    return frame


def run_ensemble(run: str, settings: dict[str, Any], root: str | Path = ".") -> pd.DataFrame:
    """results/<run>/ensemble.csv: K vectorised chains (header only when K == 1)."""
    from modelcollapse.ensemble import FRAME_COLUMNS, ensemble_frame

    fam = get_family(settings["family"])
    chains = settings["chains"]
    if chains > 1 and hasattr(fam, "simulate_ensemble"):
        truth = load_truth(fam, settings["human"], root)
        rng = np.random.default_rng(
            np.random.SeedSequence(settings["seed"], spawn_key=(_ENSEMBLE_STREAM,))
        )
        with threadpool_limits(1):
            metrics = fam.simulate_ensemble(
                truth,
                options=settings["options"],
                regime=settings["regime"],
                generations=settings["generations"],
                samples_per_generation=settings["samples_per_generation"],
                real_fraction=settings["real_fraction"],
                chains=chains,
                rng=rng,
            )
        frame = ensemble_frame(metrics)
    else:
        frame = pd.DataFrame(columns=list(FRAME_COLUMNS))
    io.write_text(
        results_dir(run, root) / "ensemble.csv", frame.to_csv(index=False, float_format="%.10g")
    )
    return frame
