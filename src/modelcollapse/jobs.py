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

import logging
from collections.abc import Callable
from typing import Any

from modelcollapse.config import Params, check_prepared_pools
from modelcollapse.fingerprint import covered, step_fingerprint
from modelcollapse.keys import Keys

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
            params.runs, params.report.get("compare", {}), stamp=Keys(params).stamp("report")
        )


def chain_job(params: Params, run: str, progress: bool = True) -> list[int]:
    """Every generation of ``run`` that is not up to date, in order, then metrics.csv;
    return the generations rebuilt. A generation whose files match its key and whose
    inputs have the content it read is kept (``persist: true`` in dvc.yaml): raising
    ``generations`` only adds generations."""
    from tqdm import tqdm

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
