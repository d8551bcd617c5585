"""The jobs: each step with its key, as the Snakemake rules and the DVC stages run it.

Each function computes the step's key from the validated params (``modelcollapse.keys``),
runs the step and has it record the key with its outputs. The step's own modules are
imported inside :func:`modelcollapse.fingerprint.covered`, which checks that every
package module the step loaded is one its code fingerprint covers.

``chain_job`` is the DVC stage ``chain@<run>``: the generations that are not up to date
(``modelcollapse.plan``), in order, then the metrics table. Snakemake runs the same
steps one job each.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelcollapse import io
from modelcollapse.fingerprint import covered, step_fingerprint
from modelcollapse.keys import Keys
from modelcollapse.settings import Params

log = logging.getLogger("modelcollapse")


def human_job(params: Params, source: str) -> None:
    spec = params.human[source]
    with covered("human", spec["family"]):
        from modelcollapse.human import prepare_human

        prepare_human(source, spec, stamp=Keys(params).stamp("human", source))


def generation_job(params: Params, run: str, generation: int, keys: Keys | None = None) -> None:
    settings = params.run(run)
    if generation == 0:
        # A real corpus fixes its pool size once prepared: check the whole run fits
        # before training anything.
        from modelcollapse.config import check_prepared_pools

        check_prepared_pools(params, runs=[run])
    key = (keys or Keys(params)).generation(run, generation)
    code = step_fingerprint("generation", settings.family)
    with covered("generation", settings.family):
        from modelcollapse.pipeline import run_generation

        run_generation(run, generation, settings, key=key, code_fingerprint=code)


def metrics_job(params: Params, run: str, keys: Keys | None = None) -> None:
    stamp = (keys or Keys(params)).stamp("metrics", run)
    with covered("metrics"):
        from modelcollapse.results import collect_metrics

        collect_metrics(run, params.run(run).generations, stamp=stamp)


def ensemble_job(params: Params, run: str) -> None:
    settings = params.run(run)
    with covered("ensemble", settings.family):
        from modelcollapse.ensemble_step import run_ensemble

        run_ensemble(run, settings, stamp=Keys(params).stamp("ensemble", run))


def figures_job(params: Params, run: str) -> None:
    settings = params.run(run)
    with covered("figures", settings.family):
        from modelcollapse.plots import plot_run

        plot_run(run, settings, stamp=Keys(params).stamp("figures", run))


def report_job(params: Params) -> None:
    with covered("report", Keys(params).families()):
        from modelcollapse.report import write_report

        write_report(
            params.runs,
            params.report.get("compare", {}),
            stamp=Keys(params).stamp("report"),
            replicates=params.report.get("replicates", {}),
        )


def chain_job(params: Params, run: str, progress: bool = True) -> list[int]:
    """Every generation of ``run`` that is not up to date, in order, then metrics.csv;
    return the generations rebuilt. A generation whose files match its key and whose
    inputs have the content it read is kept (``persist: true`` in dvc.yaml): raising
    ``generations`` only adds generations."""
    from tqdm import tqdm

    from modelcollapse.config import check_prepared_pools
    from modelcollapse.plan import Planner

    check_prepared_pools(params, runs=[run])  # before any generation is trained
    keys = Keys(params)
    generations = params.run(run).generations
    rebuilt: list[int] = []
    for g in tqdm(range(generations), desc=run, unit="gen", disable=not progress):
        # A new planner each time: it must see the generations rebuilt just before.
        status = Planner(params, keys=keys).generation_local(run, g)
        if status.fresh:
            continue
        log.info("run %s generation %d: %s: rebuilding", run, g, status.reason)
        generation_job(params, run, g, keys)
        rebuilt.append(g)
    log.info(
        "run %s: %d of %d generations rebuilt, %d kept",
        run,
        len(rebuilt),
        generations,
        generations - len(rebuilt),
    )
    metrics_job(params, run, keys)
    return rebuilt


def keys_job(params: Params, root: str = ".") -> list[str]:
    """data/keys/: one file per DVC stage holding the key of what the stage builds, so
    that ``dvc repro`` reruns a stage exactly when its key changes (dvc.yaml)."""
    from modelcollapse.dvcsync import write_stage_keys

    return write_stage_keys(params, root)


# DVC stage -> (job, what its argument names, log file pattern).
STAGES: dict[str, tuple[Callable[..., Any], str | None, str]] = {
    "keys": (keys_job, None, "logs/keys.log"),
    "human": (human_job, "source", "logs/human/{name}.log"),
    "chain": (chain_job, "run", "logs/{name}/chain.log"),
    "ensemble": (ensemble_job, "run", "logs/{name}/ensemble.log"),
    "figures": (figures_job, "run", "logs/{name}/figures.log"),
    "report": (report_job, None, "logs/report.log"),
}


# -- Snakemake's jobs: one command line each (rules/*.smk) ---------------------------

# Where the Snakefile leaves the validated settings for its jobs (scratch space).
STUDY_DIR = ".modelcollapse/study"

# Snakemake job -> (job, the positional ids it takes).
SNAKEMAKE_JOBS: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "human": (human_job, ("source",)),
    "generation": (generation_job, ("run", "generation")),
    "metrics": (metrics_job, ("run",)),
    "ensemble": (ensemble_job, ("run",)),
    "figures": (figures_job, ("run",)),
    "report": (report_job, ()),
}


def write_study(params: Params, root: str | Path = ".") -> Path:
    """The validated settings as JSON under ``.modelcollapse/study/``, named by their
    hash, for the jobs of one Snakemake invocation (``--study``): a job reads them in
    milliseconds instead of validating params.yaml again, and settings given with
    ``--config`` reach it. Content-addressed, so concurrent invocations never clash."""
    # Not sorted: the order of runs and sources in params.yaml is the report's order.
    text = json.dumps(params.to_dict(), indent=1, allow_nan=False) + "\n"
    path = Path(root) / STUDY_DIR / f"{hashlib.sha256(text.encode()).hexdigest()[:20]}.json"
    if not path.is_file():
        io.write_text(path, text)
    return path


def main(argv: list[str]) -> int:
    """``python scripts/job.py STEP [ID [GENERATION]] --study FILE --log FILE``: one
    Snakemake job. Nothing but this module, the step's own code and the settings file
    is loaded (no Snakemake, no schema validation): a statistical generation computes
    in milliseconds, so a job's start-up is most of its time (benchmarks/bench_workflow.py)."""
    import argparse

    parser = argparse.ArgumentParser(prog="scripts/job.py", description=main.__doc__)
    parser.add_argument("step", choices=sorted(SNAKEMAKE_JOBS))
    parser.add_argument("ids", nargs="*")
    parser.add_argument("--study", required=True, help="settings file written by the Snakefile")
    parser.add_argument("--log", required=True)
    args = parser.parse_args(argv)
    job, names = SNAKEMAKE_JOBS[args.step]
    if len(args.ids) != len(names):
        parser.error(f"{args.step} takes {len(names)} id(s): {' '.join(names) or 'none'}")
    from modelcollapse.logs import setup_logging

    context = " ".join(args.ids[:1] + [f"gen {g}" for g in args.ids[1:]])
    setup_logging(args.log, context=f"{args.step} {context}".strip())
    try:
        values = json.loads(Path(args.study).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise io.ArtifactError(
            f"settings file {args.study} (written by the Snakefile): {exc}; "
            "run snakemake again to write it"
        ) from None
    ids: list[Any] = [
        int(v) if n == "generation" else v for n, v in zip(names, args.ids, strict=True)
    ]
    job(Params.from_dict(values), *ids)
    return 0
