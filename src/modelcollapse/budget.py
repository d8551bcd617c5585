"""The memory a run's jobs would need, estimated from params.yaml before any job starts.

A size typed one digit too long (``pool_size: 1e12``) must be refused by validation,
not found out when a job dies with MemoryError after the jobs before it have run. The
estimate is an upper bound of the arrays a job holds, from the sizes in params.yaml:

* preparing a human source (statistical families): the pool and test tables,
  ``(pool_size + test_size) x width x 8 bytes x COPIES``, plus the true model;
* a generation: its training set (N rows; N x G rows for the last generation of the
  accumulate regimes) and the human pool it draws from, ``x width x 8 x COPIES``,
  plus the model (for categorical, ``num_symbols`` probabilities);
* the ensemble: ``chains`` copies of a chain's data and model.

``width`` (values per row) and the model's size come from the family's
``memory_footprint(truth_spec) -> (width, model_floats)`` (default: ``dim`` values per
row, a ``dim x dim`` model). The neural families declare their job memory
(``options.mem_mb``), which is checked as it is. The budget is per job,
:data:`DEFAULT_JOB_MEMORY_MB` unless params.yaml raises it on purpose
(``limits: {job_memory_mb: ...}``); README "Settings" documents both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelcollapse.checks import ConfigError
from modelcollapse.families import get_family

if TYPE_CHECKING:
    from modelcollapse.families.base import Family
    from modelcollapse.settings import RunSettings

DEFAULT_JOB_MEMORY_MB = 8192
FLOAT_BYTES = 8
# Working copies of the largest table a step holds at once (read, composed, fitted,
# sampled): a generous bound, so that the estimate stays an upper one.
COPIES = 4
MB = 2**20


def job_budget_mb(limits: Mapping[str, Any] | None) -> int:
    return int((limits or {}).get("job_memory_mb", DEFAULT_JOB_MEMORY_MB))


def footprint(family: Family, truth_spec: Mapping[str, Any]) -> tuple[int, int]:
    """(values per data row, floats of one model) of a statistical family's source."""
    hook = family.memory_footprint
    if hook is not None:
        width, model = hook(truth_spec)
        return int(width), int(model)
    dim = int(truth_spec.get("dim", 1))
    return dim, dim * dim


def human_bytes(source: Mapping[str, Any], width: int, model_floats: int) -> int:
    """A statistical source's preparation: its pool and test tables and the truth."""
    rows = source["pool_size"] + source["test_size"]
    return (rows * width + model_floats) * FLOAT_BYTES * COPIES


def run_bytes(
    settings: RunSettings, source: Mapping[str, Any], width: int, model_floats: int
) -> dict[str, int]:
    """The largest generation job and the ensemble job of a statistical run, in bytes."""
    n, gens = settings.samples_per_generation, settings.generations
    train_rows = n * gens if settings.regime.startswith("accumulate") else n
    pool_rows = source["pool_size"] if settings.regime in ("mix", "fresh") else n
    generation = ((train_rows + pool_rows + n) * width + model_floats) * FLOAT_BYTES * COPIES
    out = {"generation": generation}
    chains = settings.chains
    if chains > 1:
        per_chain = (train_rows + n) * width + model_floats
        out["ensemble"] = (chains * per_chain + pool_rows * width) * FLOAT_BYTES * COPIES
    return out


def describe_bytes(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", MB)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1024:.1f} KiB"


def check_memory(
    where: str, needed: int, what: str, limits: Mapping[str, Any], source: str
) -> None:
    allowed = job_budget_mb(limits)
    if needed > allowed * MB:
        raise ConfigError(
            f"{source}: {where}: a job would need about {describe_bytes(needed)} of "
            f"memory ({what}), over the budget of {allowed} MB per job; lower the sizes, "
            "or raise limits.job_memory_mb in params.yaml if the machine has the memory"
        )


def check_run_memory(
    run_id: str,
    settings: RunSettings,
    source_spec: Mapping[str, Any],
    limits: Mapping[str, Any],
    source: str,
) -> None:
    where = f"runs.{run_id}"
    if "truth" not in source_spec:  # a neural family: the job's declared memory
        declared = settings.options.get("mem_mb")
        if declared is not None:
            check_memory(f"{where}.options.mem_mb", declared * MB, "declared", limits, source)
        return
    width, model = footprint(get_family(settings.family), source_spec["truth"])
    needed = run_bytes(settings, source_spec, width, model)
    n, chains = settings.samples_per_generation, settings.chains
    for job, size in needed.items():
        what = (
            f"the {job} job: samples_per_generation {n}, generations {settings.generations}"
            + (f", chains {chains}" if job == "ensemble" else "")
            + f", regime {settings.regime}, {width} values per row, a model of {model} "
            "numbers"
        )
        check_memory(where, size, what, limits, source)
