"""How generation n's training set is composed (the regimes table in the README)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelcollapse.paths import gen_file, human_file

if TYPE_CHECKING:
    from modelcollapse.settings import RunSettings

REGIMES = ("replace", "mix", "accumulate", "accumulate_subsample", "fresh")
NEEDS_REAL_FRACTION = ("mix", "fresh")


def real_row_count(samples_per_generation: int, real_fraction: float) -> int:
    """Human rows in a mix/fresh generation: real_fraction * N, rounded half up."""
    return int(math.floor(real_fraction * samples_per_generation + 0.5))


def compose_training_set(
    run: str,
    generation: int,
    settings: RunSettings,
    rng: np.random.Generator,
    root: str | Path = ".",
) -> dict[str, Any]:
    """The manifest of the rows generation ``generation`` trains on.

    Rows are references (artifact path, md5, row ranges), never copies. Generation 0
    trains on the first N rows of the human pool, whatever the regime: it is the run's
    root's (``settings.root``, shared with every run whose generation-0 settings are
    the same), and its manifest names the root, not a run. Later generations follow
    the regime and read generation 0's files from the root. An accumulate manifest
    includes its predecessor's manifest by reference, so manifests stay O(1) in size and
    storage grows linearly with generations.
    """
    # Here, not at the top: validating params.yaml reads this module's constants and
    # should not pay for the manifest module's pandas.
    from modelcollapse.manifest import include, part, row_count, to_ranges

    n = settings.samples_per_generation
    regime = settings.regime
    human = settings.human
    pool = part(human_file(human, "pool.parquet"), "human", None, [(0, n)], root)
    if generation == 0:
        return {
            "run": settings.root,
            "generation": 0,
            "regime": None,
            "samples_per_generation": n,
            "real_fraction": None,
            "parts": [pool],
        }
    prev = generation - 1
    prev_samples = gen_file(settings.chain(run, prev), prev, "samples.parquet")
    if regime == "replace":
        parts = [part(prev_samples, "synthetic", prev, [(0, n)], root)]
    elif regime in ("mix", "fresh"):
        k = real_row_count(n, settings.real_fraction or 0.0)
        if regime == "mix":
            pool_size = row_count(human_file(human, "pool.parquet"), root)
            rows = np.sort(rng.choice(pool_size, size=k, replace=False))
            human_ranges = to_ranges(rows)
        else:  # fresh: the next k pool rows no earlier generation has used
            start = n + (generation - 1) * k
            human_ranges = [[start, start + k]] if k else []
        parts = [
            part(human_file(human, "pool.parquet"), "human", None, human_ranges, root),
            part(prev_samples, "synthetic", prev, [(0, n - k)] if n - k else [], root),
        ]
    elif regime == "accumulate":
        parts = [
            include(gen_file(settings.chain(run, prev), prev, "train.json"), root),
            part(prev_samples, "synthetic", prev, [(0, n)], root),
        ]
    elif regime == "accumulate_subsample":
        # Uniform without replacement over the accumulated pool: human rows
        # 0..n-1 followed by every earlier generation's n samples, in order.
        chosen = np.sort(rng.choice((generation + 1) * n, size=n, replace=False))
        block = chosen // n
        parts = [
            part(
                human_file(human, "pool.parquet"),
                "human",
                None,
                to_ranges(chosen[block == 0]),
                root,
            )
        ]
        for j in range(generation):
            rows = chosen[block == j + 1] - (j + 1) * n
            if rows.size:
                parts.append(
                    part(
                        gen_file(settings.chain(run, j), j, "samples.parquet"),
                        "synthetic",
                        j,
                        to_ranges(rows),
                        root,
                    )
                )
    else:  # pragma: no cover - the schema rejects unknown regimes
        raise ValueError(f"unknown regime {regime!r}")
    parts = [p for p in parts if p.get("include") or p["rows"]]
    return {
        "run": run,
        "generation": generation,
        "regime": regime,
        "samples_per_generation": n,
        "real_fraction": settings.real_fraction,
        "parts": parts,
    }
