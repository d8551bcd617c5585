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
from functools import cached_property
from typing import Any

from modelcollapse.canonical import digest

# Settings a generation's artifacts do not depend on: changing them must not
# invalidate (or rerun) generations that already exist.
NOT_GENERATION_KEYS = ("generations", "chains", "plot_generations")

# Settings generation 0 does not read either: it trains on the first N human rows
# whatever the regime, so runs that differ only in these share one generation 0 (a
# *root*, README "Where results land"; docs/lineage.md, "Shared generation 0").
NOT_ROOT_KEYS = ("regime", "real_fraction")
# Where a root's ledger and artifacts live: ``roots/<source>/<root id>`` stands in
# for a run id (data/roots/..., lineage/roots/...); no run id has a '/'.
ROOTS = "roots"

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

    def root_dict(self) -> dict[str, Any]:
        """The settings generation 0 depends on: what a root records and its key hashes."""
        return root_settings(self.generation_dict())

    @cached_property
    def root(self) -> str:
        """The root this run's generation 0 is: ``roots/<source>/<root id>``."""
        return root_name(self.generation_dict())

    def chain(self, run: str, generation: int) -> str:
        """Whose generation ``generation`` of ``run`` is: the run's own for g >= 1, its
        root's for generation 0 (the paths and the ledger take either)."""
        return self.root if generation == 0 else run

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


def root_settings(generation_settings: Mapping[str, Any]) -> dict[str, Any]:
    """A run's settings (:meth:`RunSettings.generation_dict`, as a ledger record holds
    them, or :meth:`RunSettings.to_dict`) without what generation 0 does not read."""
    left_out = NOT_ROOT_KEYS + NOT_GENERATION_KEYS
    return {k: v for k, v in generation_settings.items() if k not in left_out}


def root_name(generation_settings: Mapping[str, Any]) -> str:
    """``roots/<source>/<family>-s<seed>-<hash>`` for a run's generation settings: equal
    for runs whose generation 0 is the same. The hash is of the root's settings (not of
    the code: a code change rebuilds a root in place, as it does a generation)."""
    settings = root_settings(generation_settings)
    short = digest(settings)[:8]
    return f"{ROOTS}/{settings['human']}/{settings['family']}-s{settings['seed']}-{short}"


def is_root(chain: str) -> bool:
    """Whether a chain name (a run id or a root name) is a root's."""
    return chain.startswith(ROOTS + "/")


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

    def roots(self, source: str | None = None) -> dict[str, list[str]]:
        """Every root (of ``source``, or of all sources) -> the runs that start from it,
        in params.yaml's order."""
        out: dict[str, list[str]] = {}
        for run, settings in self.runs.items():
            if source is None or settings.human == source:
                out.setdefault(settings.root, []).append(run)
        return out

    @cached_property
    def _root_settings(self) -> dict[str, RunSettings]:
        out: dict[str, RunSettings] = {}
        for settings in self.runs.values():
            out.setdefault(settings.root, settings)
        return out

    def root_settings(self, root: str) -> RunSettings:
        """The settings of the first run that starts from ``root`` (every run that does
        has the same :meth:`RunSettings.root_dict`)."""
        try:
            return self._root_settings[root]
        except KeyError:
            raise KeyError(f"no run of params.yaml starts from {root}") from None
