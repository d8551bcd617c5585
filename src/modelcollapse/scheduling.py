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
# machines in README "Benchmarks"): the neural families' training; a statistical
# generation is mostly Python start-up (a GMM's EM fit at N = 1000 takes 0.04-0.4 s).
GENERATION_SECONDS = {"lm": 150.0, "vae": 100.0}
STATISTICAL_JOB_SECONDS = 0.5
# The ensemble job simulates every generation of its chains at once (vectorised): a
# GMM chain-generation is a batched EM fit (0.35 s per generation of 100 chains at
# N = 1000); the others are a few array operations.
ENSEMBLE_SECONDS_PER_CHAIN_GENERATION = {"gmm": 0.0035}
ENSEMBLE_SECONDS_DEFAULT = 0.0001

# A cluster job's time limit (Snakemake's ``runtime`` resource, in minutes): this many
# times the estimate, and never below the floor. Generous on purpose: a job killed at
# its limit is lost work, while a limit set too long only waits longer in the queue.
# A cluster profile overrides it per rule with ``set-resources``.
RUNTIME_SAFETY = 4.0
RUNTIME_FLOOR_MIN = 10


def generation_seconds(settings: RunSettings) -> float:
    """A rough estimate of one generation job's seconds on one core."""
    return GENERATION_SECONDS.get(settings.family, STATISTICAL_JOB_SECONDS)


def ensemble_seconds(settings: RunSettings) -> float:
    """A rough estimate of the ensemble job's seconds: every generation of every chain
    (none when the run has a single chain: the job writes a header only)."""
    if settings.chains <= 1:
        return 0.0
    per = ENSEMBLE_SECONDS_PER_CHAIN_GENERATION.get(settings.family, ENSEMBLE_SECONDS_DEFAULT)
    return per * settings.chains * settings.generations


def priority(settings: RunSettings, generation: int) -> int:
    """Snakemake priority of generation ``generation``'s job: the estimated seconds of
    its chain from there to the run's last generation. Runs are chains, so the longest
    remaining chain bounds the study's wall time; starting it first keeps both cores
    busy to the end instead of leaving one long chain running alone."""
    return round((settings.generations - generation) * generation_seconds(settings))


def ensemble_priority(settings: RunSettings) -> int:
    """Snakemake priority of the run's ensemble job: its estimated seconds, so that a
    long ensemble (the paper's GMM: 100 chains x 2000 generations) starts beside the
    chains instead of after them."""
    return round(ensemble_seconds(settings))


def human_priority(params: Params, source: str) -> int:
    """Snakemake priority of preparing human source ``source``: above the first
    generation of every run that starts from it (Snakemake does not pass a job's
    priority to the jobs it waits for, and a source left at 0 would wait behind every
    short chain that is already running)."""
    runs = [s for s in params.runs.values() if s.human == source]
    waiting = [max(priority(s, 0), ensemble_priority(s)) for s in runs]
    return max(waiting, default=0) + 1


def runtime_minutes(seconds: float) -> int:
    """A cluster time limit, in minutes, for a job estimated at ``seconds``."""
    return max(RUNTIME_FLOOR_MIN, math.ceil(RUNTIME_SAFETY * seconds / 60))


def generation_runtime(settings: RunSettings) -> int:
    return runtime_minutes(generation_seconds(settings))


def ensemble_runtime(settings: RunSettings) -> int:
    return runtime_minutes(ensemble_seconds(settings))


def gpus(settings: RunSettings) -> int:
    """GPUs a generation job asks a cluster for: one for a run with ``device: cuda``."""
    return 1 if settings.options.get("device") == "cuda" else 0
