"""How jobs are scheduled: Snakemake priorities and cluster resources.

Only the Snakefile reads this module (rules/common.smk); no step imports it, so it is
outside every step's code fingerprint (modelcollapse.fingerprint): tuning an estimate
here reorders or resizes jobs and never reruns one. Results never depend on order or
on a job's resources (docs/architecture.md, "What is up to date"; docs/cluster.md).
"""

from __future__ import annotations

import math

from modelcollapse.settings import Params, RunSettings

# Rough seconds one generation job takes on one CPU core (measured on the 2-core
# machines in README "Benchmarks"): a GMM generation fits one mixture per chain;
# other families fall back to a statistical job's start-up cost.
GENERATION_SECONDS = {"lm": 150.0, "vae": 100.0}
GMM_SECONDS_PER_CHAIN = 0.03
STATISTICAL_JOB_SECONDS = 0.5

# A cluster job's time limit (Snakemake's ``runtime`` resource, in minutes): this many
# times the estimate, and never below the floor. Generous on purpose: a job killed at
# its limit is lost work, while a limit set too long only waits longer in the queue.
# A cluster profile overrides it per rule with ``set-resources``.
RUNTIME_SAFETY = 4.0
RUNTIME_FLOOR_MIN = 10


def generation_seconds(settings: RunSettings) -> float:
    """A rough estimate of one generation job's seconds on one core."""
    if settings.family == "gmm":
        return max(STATISTICAL_JOB_SECONDS, GMM_SECONDS_PER_CHAIN * settings.chains)
    return GENERATION_SECONDS.get(settings.family, STATISTICAL_JOB_SECONDS)


def priority(settings: RunSettings, generation: int) -> int:
    """Snakemake priority of generation ``generation``'s job: the estimated seconds of
    its chain from there to the run's last generation. Runs are chains, so the longest
    remaining chain bounds the study's wall time; starting it first keeps both cores
    busy to the end instead of leaving one long chain running alone."""
    return round((settings.generations - generation) * generation_seconds(settings))


def human_priority(params: Params, source: str) -> int:
    """Snakemake priority of preparing human source ``source``: above the first
    generation of every run that starts from it (Snakemake does not pass a job's
    priority to the jobs it waits for, and a source left at 0 would wait behind every
    short chain that is already running)."""
    waiting = [priority(s, 0) for s in params.runs.values() if s.human == source]
    return max(waiting, default=0) + 1


def runtime_minutes(settings: RunSettings, generations: int = 1) -> int:
    """A cluster time limit, in minutes, for a job doing ``generations`` generations'
    worth of the run's work (a generation job: 1; the ensemble, which simulates every
    generation of its chains: all of them)."""
    estimate = RUNTIME_SAFETY * generations * generation_seconds(settings) / 60
    return max(RUNTIME_FLOOR_MIN, math.ceil(estimate))


def gpus(settings: RunSettings) -> int:
    """GPUs a generation job asks a cluster for: one for a run with ``device: cuda``."""
    return 1 if settings.options.get("device") == "cuda" else 0
