"""The steps of the workflow, shared by the Snakemake rules and the DVC stages.

Both tools call these functions, so `snakemake` and `dvc repro` write
byte-identical artifacts. Each step is deterministic in its settings and seed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from modelcollapse import io
from modelcollapse.families import get_family
from modelcollapse.manifest import cached_md5, composition, load_training_set
from modelcollapse.paths import gen_file, human_file, results_dir
from modelcollapse.regimes import compose_training_set

log = logging.getLogger("modelcollapse")

# Independent random streams: one per generation step, one for the ensemble.
_GENERATION_STREAM = 1
_ENSEMBLE_STREAM = 2


def generation_rng(seed: int, generation: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(_GENERATION_STREAM, generation))


def prepare_human(source: str, spec: dict[str, Any], root: str | Path = ".") -> None:
    """Draw a human source's pool and test split from its true distribution."""
    family = get_family(spec["family"])
    truth = family.truth_from_spec(spec["truth"])
    truth_path = human_file(source, "truth.safetensors", root)
    truth.save(truth_path, extra={"source": source, "spec": spec})
    truth_md5 = io.file_md5(truth_path)
    rng = np.random.default_rng(np.random.SeedSequence(spec["seed"]))
    with threadpool_limits(1):
        pool = truth.sample(spec["pool_size"], rng)
        test = truth.sample(spec["test_size"], rng)
    for name, frame in (("pool.parquet", pool), ("test.parquet", test)):
        frame = frame.assign(source="human", origin_generation=np.int64(-1), origin_md5=truth_md5)
        io.write_table(human_file(source, name, root), frame)


def run_generation(
    run: str, generation: int, settings: dict[str, Any], root: str | Path = "."
) -> dict[str, Any]:
    """Compose, train, sample, evaluate: one generation step of one run.

    Writes train.json, model.safetensors (+ model.json), samples.parquet and
    metrics.json into the generation's directory and returns the metrics.
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
        truth = fam.Model.load(human_file(settings["human"], "truth.safetensors", root))
        random_state = int(fit_seq.generate_state(1)[0])
        model = fam.build_model(settings["options"], truth, random_state)
        data_columns = [
            c for c in train.columns if c not in ("source", "origin_generation", "origin_md5")
        ]
        model.fit(train[data_columns])
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
        samples = model.sample(n, np.random.default_rng(sample_seq))
        samples = samples.assign(
            source="synthetic",
            origin_generation=np.int64(generation),
            model_md5=cached_md5(model_path),
        )
        samples_path = gen_file(run, generation, "samples.parquet", root)
        io.write_table(samples_path, samples)
        test = io.read_table(human_file(settings["human"], "test.parquet", root))
        test = test[
            [c for c in test.columns if c not in ("source", "origin_generation", "origin_md5")]
        ]
        metrics = fam.evaluate(model, truth, test, samples[data_columns])
    metrics = {
        "generation": generation,
        **{k: float(v) for k, v in metrics.items()},
        "train_rows": int(len(train)),
        "train_human_fraction": float(manifest["composition"]["human_fraction"]),
    }
    io.write_json(gen_file(run, generation, "metrics.json", root), metrics)
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
        truth = fam.Model.load(human_file(settings["human"], "truth.safetensors", root))
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
