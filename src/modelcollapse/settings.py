"""A run's settings: one typed, frozen object, built once by validation.

:func:`modelcollapse.config.validate` merges ``defaults``, the run's own keys and the
schema's defaults (params.schema.yaml for the run, the family's schema file for its
options) into a :class:`RunSettings`; every step reads its attributes, and nothing
downstream guesses a default. The JSON form (:meth:`RunSettings.to_dict`) is what
artifacts record and what keys hash; :meth:`RunSettings.from_dict` rebuilds the object
from it without validating again (a job given the validated settings).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

# Settings a generation's artifacts do not depend on: changing them must not
# invalidate (or rerun) generations that already exist.
NOT_GENERATION_KEYS = ("generations", "chains", "plot_generations")

# A job's threads and memory (MB) where the family has no ``threads``/``mem_mb`` options
# (the statistical families: one thread, numbers far below this memory).
SINGLE_THREAD = 1
DEFAULT_JOB_MB = 1000


@dataclass(frozen=True)
class RunSettings:
    """One run, validated and complete (every default filled in)."""

    family: str
    human: str
    generations: int
    samples_per_generation: int
    regime: str
    real_fraction: float | None  # None unless the regime is mix or fresh
    seed: int
    chains: int
    options: Mapping[str, Any]  # the family's options, its schema's defaults filled in
    plot_generations: tuple[int, ...]

    @property
    def threads(self) -> int:
        """The threads a generation job uses (a neural family's ``threads`` option)."""
        return int(self.options.get("threads", SINGLE_THREAD))

    @property
    def mem_mb(self) -> int:
        """The memory a generation job declares (a neural family's ``mem_mb`` option)."""
        return int(self.options.get("mem_mb", DEFAULT_JOB_MB))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: what model.json and the keys record."""
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}
        out["options"] = dict(self.options)
        out["plot_generations"] = list(self.plot_generations)
        return out

    def generation_dict(self) -> dict[str, Any]:
        """The settings a generation's artifacts depend on (``NOT_GENERATION_KEYS`` left
        out): what each generation's model.json records and its key hashes."""
        return {k: v for k, v in self.to_dict().items() if k not in NOT_GENERATION_KEYS}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunSettings:
        """Rebuild validated settings from :meth:`to_dict`'s form (no validation)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        missing = sorted(names - set(values))
        if unknown or missing:
            raise ValueError(f"run settings: unknown keys {unknown}, missing keys {missing}")
        given = dict(values)
        given["options"] = dict(given["options"])
        given["plot_generations"] = tuple(given["plot_generations"])
        return cls(**given)


@dataclass(frozen=True)
class Params:
    """A validated params.yaml."""

    runs: dict[str, RunSettings]
    human: dict[str, dict[str, Any]]
    report: dict[str, Any] = field(default_factory=dict)
    # How much a job may hold (limits.job_memory_mb): checked, never part of a result.
    limits: dict[str, Any] = field(default_factory=dict)

    def run(self, run_id: str) -> RunSettings:
        if run_id not in self.runs:
            from modelcollapse.checks import ConfigError

            raise ConfigError(f"unknown run {run_id!r}; params.yaml defines {sorted(self.runs)}")
        return self.runs[run_id]

    def generation_settings(self, run_id: str) -> dict[str, Any]:
        """The JSON form of what a generation's artifacts depend on (what they record)."""
        return self.run(run_id).generation_dict()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the Snakefile hands it to every job)."""
        return {
            "runs": {run: settings.to_dict() for run, settings in self.runs.items()},
            "human": copy.deepcopy(self.human),
            "report": copy.deepcopy(self.report),
            "limits": dict(self.limits),
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Params:
        """Rebuild validated params from :meth:`to_dict`'s form (no validation)."""
        return cls(
            runs={run: RunSettings.from_dict(s) for run, s in values["runs"].items()},
            human=dict(values["human"]),
            report=dict(values["report"]),
            limits=dict(values["limits"]),
        )

    def human_source(self, run_id: str) -> dict[str, Any]:
        return self.human[self.run(run_id).human]
