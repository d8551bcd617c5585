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
from dataclasses import dataclass, fields
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
