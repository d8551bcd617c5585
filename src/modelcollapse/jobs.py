"""The jobs: each step with its key, as the Snakemake rules and the DVC stages run it.

Each function computes the step's key from the validated params (``modelcollapse.keys``),
runs the step and has it record the key with its outputs. The step's own modules are
imported inside :func:`modelcollapse.fingerprint.covered`, which checks that every
package module the step loaded is one its code fingerprint covers.

``roots_job`` is the DVC stage ``roots@<source>``: every generation 0 that runs on that
human source start from (a *root*, shared by the runs whose generation-0 settings are
equal). ``chain_job`` is the DVC stage ``chain@<run>``: the run's generations from 1 on
that are not up to date (``modelcollapse.plan``), in order, then the metrics table.
Snakemake runs the same steps one job each.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelcollapse import io
from modelcollapse.fingerprint import covered, step_fingerprint
from modelcollapse.keys import Keys
from modelcollapse.settings import ROOTS, Params

log = logging.getLogger("modelcollapse")


def human_job(params: Params, source: str) -> None:
    spec = params.human[source]
    with covered("human", spec["family"]):
        from modelcollapse.human import prepare_human

        prepare_human(source, spec, stamp=Keys(params).stamp("human", source))


def generation_job(params: Params, run: str, generation: int, keys: Keys | None = None) -> None:
    """Generation ``generation`` of ``run``; generation 0 is the run's root's."""
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


def root_job(params: Params, source: str, root_id: str) -> None:
    """The root ``roots/<source>/<root_id>``: generation 0 of the runs that share it,
    trained with the settings of the first of them (equal for all in what it reads)."""
    root = f"{ROOTS}/{source}/{root_id}"
    runs = params.roots(source).get(root)
    if not runs:
        raise io.ArtifactError(f"no run of params.yaml starts from {root}")
    generation_job(params, runs[0], 0)


def metrics_job(params: Params, run: str, keys: Keys | None = None) -> None:
    stamp = (keys or Keys(params)).stamp("metrics", run)
    with covered("metrics"):
        from modelcollapse.results import collect_metrics

        collect_metrics(run, params.run(run), stamp=stamp)


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


def roots_job(params: Params, source: str, progress: bool = True) -> list[str]:
    """Every root of human source ``source`` that is not up to date; return those rebuilt.
    A root whose files match its key and whose human data has the content it read is
    kept (``persist: true`` in dvc.yaml); a root no run starts from any more is removed
    with its ledger records (it is this stage's output alone)."""
    from tqdm import tqdm

    from modelcollapse.config import check_prepared_pools
    from modelcollapse.paths import ROOTS_DIR
    from modelcollapse.plan import Planner

    roots = params.roots(source)
    check_prepared_pools(params, runs=[run for runs in roots.values() for run in runs])
    keys = Keys(params)
    rebuilt: list[str] = []
    for root, runs in tqdm(roots.items(), desc=source, unit="root", disable=not progress):
        status = Planner(params, keys=keys).root_local(root)
        if status.fresh:
            continue
        log.info("%s (generation 0 of %s): %s: rebuilding", root, ", ".join(runs), status.reason)
        generation_job(params, runs[0], 0, keys)
        rebuilt.append(root)
    Path(ROOTS_DIR.format(source=source)).mkdir(parents=True, exist_ok=True)  # even empty
    remove_unused_roots(params, [source])
    log.info(
        "human source %s: %d of %d roots rebuilt, %d kept",
        source,
        len(rebuilt),
        len(roots),
        len(roots) - len(rebuilt),
    )
    return rebuilt


def remove_unused_roots(
    params: Params, sources: list[str] | None = None, root: str | Path = "."
) -> list[str]:
    """Remove every root under data/roots/ (of ``sources``) that no run of ``params``
    starts from and no other run in the ledger names (a run taken out of params.yaml
    keeps its records and its root), with its ledger records; return the roots removed. Called by
    the stage ``roots@<source>`` and after a Snakemake run that records its work in DVC."""
    from modelcollapse.lineage.ledger import ledger_dir
    from modelcollapse.lineage.records import roots_in_use
    from modelcollapse.paths import ROOTS_DIR

    named = roots_in_use(root, besides=params.runs)
    removed = []
    for source in params.human if sources is None else sources:
        directory = Path(root) / ROOTS_DIR.format(source=source)
        if not directory.is_dir():
            continue
        wanted = {name.rsplit("/", 1)[1] for name in params.roots(source)}
        for old in sorted(directory.iterdir()):
            if old.name in wanted or f"{ROOTS}/{source}/{old.name}" in named:
                continue
            log.info("removing %s: no run of params.yaml starts from it", old)
            shutil.rmtree(old) if old.is_dir() else old.unlink()
            shutil.rmtree(ledger_dir(f"{ROOTS}/{source}/{old.name}", root), ignore_errors=True)
            removed.append(f"{ROOTS}/{source}/{old.name}")
    return removed


def chain_job(params: Params, run: str, progress: bool = True) -> list[int]:
    """Every generation of ``run`` from 1 on that is not up to date, in order, then
    metrics.csv; return the generations rebuilt. A generation whose files match its key
    and whose inputs have the content it read is kept (``persist: true`` in dvc.yaml):
    raising ``generations`` only adds generations. Generation 0 is the run's root's,
    built by the stage ``roots@<source>`` before this one."""
    from tqdm import tqdm

    from modelcollapse.config import check_prepared_pools
    from modelcollapse.plan import Planner

    check_prepared_pools(params, runs=[run])  # before any generation is trained
    keys = Keys(params)
    settings = params.run(run)
    root = Planner(params, keys=keys).root_local(settings.root)
    if not root.fresh:
        raise io.ArtifactError(
            f"run {run}: its generation 0, {settings.root}, is not up to date "
            f"({root.reason}); the stage roots@{settings.human} builds it: run "
            f"`dvc repro chain@{run}` (which runs it first), not `--single-item`"
        )
    generations = settings.generations
    rebuilt: list[int] = []
    for g in tqdm(range(1, generations), desc=run, unit="gen", disable=not progress):
        # A new planner each time: it must see the generations rebuilt just before.
        status = Planner(params, keys=keys).generation_local(run, g)
        if status.fresh:
            continue
        log.info("run %s generation %d: %s: rebuilding", run, g, status.reason)
        generation_job(params, run, g, keys)
        rebuilt.append(g)
    log.info(
        "run %s: %d of %d generations rebuilt, %d kept (generation 0: %s)",
        run,
        len(rebuilt),
        generations - 1,
        generations - 1 - len(rebuilt),
        settings.root,
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
    "roots": (roots_job, "source", "logs/roots/{name}.log"),
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
    "root": (root_job, ("source", "root")),
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

    if args.step == "root":
        context = f"{ROOTS}/{'/'.join(args.ids)}"
    else:
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
