"""Ensembles of independent chains, vectorised over chains.

A statistical family describes itself to :func:`run_chains` as a
:class:`BatchedFamily`: four functions on arrays whose first axis is the chain
(``(K, n, ...)`` rows, batched parameters). The regime logic, shared by every
family, lives in :class:`RegimeComposer`; there is no Python loop over chains,
only over generations.

In an ensemble the human distribution is the truth itself (an infinite pool),
so ``mix`` and ``fresh`` both draw their ``k`` human rows as new draws from the
truth: the pipeline's distinction (reused pool rows vs never-used rows) vanishes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modelcollapse.regimes import NEEDS_REAL_FRACTION, REGIMES, real_row_count

if TYPE_CHECKING:
    import pandas as pd

FRAME_COLUMNS = ("generation", "metric", "mean", "median", "std")


@dataclass(frozen=True)
class BatchedFamily:
    """A family's vectorised operations; every array's first axis is the chain.

    ``draw_truth(chains, n, rng)`` -> human rows ``(K, n, ...)``;
    ``fit(rows, rng)`` -> batched parameters (any object);
    ``sample(params, n, rng)`` -> rows ``(K, n, ...)``;
    ``measure(params, samples)`` -> ``{metric: (K,) array}``.

    Optional, for families whose fit depends on additive statistics only:
    ``summarize(rows)`` -> a tuple of arrays that add up over row blocks, and
    ``fit_summary(summary, n)`` -> the parameters ``fit`` would give on those
    ``n`` rows. With them the ``accumulate`` regime costs O(N) per generation
    instead of refitting a pool of ``(g+1) N`` rows.
    """

    draw_truth: Callable[[int, int, np.random.Generator], np.ndarray]
    fit: Callable[[np.ndarray, np.random.Generator], Any]
    sample: Callable[[Any, int, np.random.Generator], np.ndarray]
    measure: Callable[[Any, np.ndarray], dict[str, np.ndarray]]
    summarize: Callable[[np.ndarray], tuple[np.ndarray, ...]] | None = None
    fit_summary: Callable[[tuple[np.ndarray, ...], int], Any] | None = None


class RegimeComposer:
    """Compose each generation's training rows for K chains at once.

    Call :meth:`training_set` for generations 0, 1, 2, ... in order, passing the
    previous generation's samples ``(K, N, ...)`` (``None`` for generation 0).
    """

    def __init__(
        self,
        regime: str,
        *,
        samples_per_generation: int,
        real_fraction: float | None,
        chains: int,
        generations: int,
        draw_truth: Callable[[int, int, np.random.Generator], np.ndarray],
        rng: np.random.Generator,
    ) -> None:
        if regime not in REGIMES:
            raise ValueError(f"regime: unknown regime {regime!r}; known: {list(REGIMES)}")
        if regime in NEEDS_REAL_FRACTION:
            if real_fraction is None or not 0.0 <= float(real_fraction) <= 1.0:
                raise ValueError(f"real_fraction: regime {regime!r} needs a value in [0, 1]")
            self.real_rows = real_row_count(samples_per_generation, float(real_fraction))
        else:
            self.real_rows = 0
        if samples_per_generation < 1 or chains < 1 or generations < 1:
            raise ValueError("samples_per_generation, chains and generations must be >= 1")
        self.regime = regime
        self.n = samples_per_generation
        self.chains = chains
        self.generations = generations
        self.draw_truth = draw_truth
        self.rng = rng
        self._pool: np.ndarray | None = None  # accumulate regimes: (K, G*N, ...) buffer
        self._pool_rows = 0
        self._next_generation = 0

    def _append(self, rows: np.ndarray) -> None:
        if self._pool is None:
            # Preallocated once: a view of the filled part is the training set, so
            # accumulating never copies the whole pool again.
            shape = (self.chains, self.generations * self.n, *rows.shape[2:])
            self._pool = np.empty(shape, dtype=rows.dtype)
        self._pool[:, self._pool_rows : self._pool_rows + rows.shape[1]] = rows
        self._pool_rows += rows.shape[1]

    def training_set(self, generation: int, previous: np.ndarray | None) -> np.ndarray:
        if generation != self._next_generation:
            raise ValueError(f"expected generation {self._next_generation}, got {generation}")
        self._next_generation += 1
        accumulating = self.regime in ("accumulate", "accumulate_subsample")
        if generation == 0:
            rows = self.draw_truth(self.chains, self.n, self.rng)
            if accumulating:
                self._append(rows)
            return rows
        if previous is None or previous.shape[:2] != (self.chains, self.n):
            raise ValueError("previous samples must have shape (chains, samples_per_generation)")
        if self.regime == "replace":
            return previous
        if self.regime in ("mix", "fresh"):
            human = self.draw_truth(self.chains, self.real_rows, self.rng)
            return np.concatenate([human, previous[:, : self.n - self.real_rows]], axis=1)
        self._append(previous)
        assert self._pool is not None  # _append allocates it
        if self.regime == "accumulate":
            return self._pool[:, : self._pool_rows]
        return subsample_without_replacement(self._pool, self.n, self.rng, size=self._pool_rows)


def subsample_without_replacement(
    pool: np.ndarray, n: int, rng: np.random.Generator, size: int | None = None
) -> np.ndarray:
    """``n`` of the first ``size`` rows of each chain, uniformly without replacement.

    Small pools (``<= 4n`` rows): the ``n`` smallest of iid uniform keys, found by
    ``argpartition``. Larger pools: draw ``n`` indices with replacement and redraw
    the repeated ones until all differ; each redraw collides with probability
    ``< 1/4``, so a few rounds of O(n) work suffice whatever the pool size. Both
    procedures treat every pool row alike, so every ``n``-subset is equally likely.
    Chains draw independently. ``pool`` may be a preallocated buffer of which only
    the first ``size`` rows per chain are filled.
    """
    chains, capacity = pool.shape[:2]
    size = capacity if size is None else size
    if n > size or size > capacity:
        raise ValueError(f"cannot draw {n} rows without replacement from {size}")
    if size <= 4 * n:
        keys = rng.random((chains, size))
        idx = np.argpartition(keys, n - 1, axis=1)[:, :n] if n < size else np.argsort(keys, 1)
    else:
        idx = rng.integers(0, size, size=(chains, n))
        while True:
            idx.sort(axis=1)
            repeated = np.zeros(idx.shape, dtype=bool)
            repeated[:, 1:] = idx[:, 1:] == idx[:, :-1]
            count = int(repeated.sum())
            if count == 0:
                break
            idx[repeated] = rng.integers(0, size, size=count)
    # Gather whole rows through one flat index: far faster than take_along_axis
    # on a large pool, and no copy of the pool when it is contiguous.
    flat = np.ascontiguousarray(pool).reshape(chains * capacity, *pool.shape[2:])
    return flat[idx + np.arange(chains)[:, None] * capacity]


def equivalent_to_replace(
    regime: str, samples_per_generation: int, real_fraction: float | None
) -> bool:
    """True for ``replace`` and for ``mix``/``fresh`` with zero human rows (the same chain)."""
    if regime == "replace":
        return True
    if regime not in NEEDS_REAL_FRACTION or real_fraction is None:
        return False
    return real_row_count(samples_per_generation, float(real_fraction)) == 0


def run_chains(
    family: BatchedFamily,
    *,
    regime: str,
    generations: int,
    samples_per_generation: int,
    real_fraction: float | None,
    chains: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Run ``chains`` independent chains; returns ``{metric: (generations, chains)}``."""
    composer = RegimeComposer(
        regime,
        samples_per_generation=samples_per_generation,
        real_fraction=real_fraction,
        chains=chains,
        generations=generations,
        draw_truth=family.draw_truth,
        rng=rng,
    )
    summarize, fit_summary = family.summarize, family.fit_summary
    incremental = regime == "accumulate" and summarize is not None
    out: dict[str, np.ndarray] = {}
    samples: np.ndarray | None = None
    summary: tuple[np.ndarray, ...] | None = None
    for g in range(generations):
        if incremental:
            assert summarize is not None and fit_summary is not None
            # The accumulated pool enters the fit only through additive statistics.
            rows = family.draw_truth(chains, samples_per_generation, rng) if g == 0 else samples
            assert rows is not None  # the previous generation's samples
            new = summarize(rows)
            summary = (
                new if summary is None else tuple(a + b for a, b in zip(summary, new, strict=True))
            )
            params = fit_summary(summary, (g + 1) * samples_per_generation)
        else:
            params = family.fit(composer.training_set(g, samples), rng)
        samples = family.sample(params, samples_per_generation, rng)
        for name, values in family.measure(params, samples).items():
            if name not in out:
                out[name] = np.empty((generations, chains))
            out[name][g] = values
    return out


def batched_categorical(probs: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws per row of ``probs`` ``(K, C)``: inverse CDF, one searchsorted for all rows.

    Row ``k``'s CDF is shifted by ``k`` so that the rows form one increasing array;
    a symbol of probability 0 has an empty interval and is never drawn.
    """
    probs = np.asarray(probs, dtype=float)
    chains, size = probs.shape
    cdf = np.cumsum(probs, axis=1)
    cdf = cdf / cdf[:, -1:]  # exact 1.0 at the end, also after trailing zeros
    offsets = np.arange(chains, dtype=float)[:, None]
    u = rng.random((chains, n))
    flat = np.searchsorted((cdf + offsets).ravel(), (u + offsets).ravel(), side="right")
    draws = flat.reshape(chains, n) - np.arange(chains)[:, None] * size
    # u + k can round up to k + 1; clamp to the row's last symbol of positive probability.
    last_positive = size - 1 - np.argmax(probs[:, ::-1] > 0, axis=1)
    return np.minimum(draws, last_positive[:, None])


def ensemble_frame(metrics: dict[str, np.ndarray]) -> pd.DataFrame:
    """Summarise ``{metric: (G, K)}`` per generation: mean, median, std (ddof=1)."""
    import pandas as pd  # the ensemble step's table; the generation step never loads it

    parts = []
    for name in sorted(metrics):
        values = np.asarray(metrics[name], dtype=float)
        if values.ndim != 2:
            raise ValueError(f"{name}: expected shape (generations, chains), got {values.shape}")
        std = values.std(axis=1, ddof=1) if values.shape[1] > 1 else np.full(len(values), np.nan)
        parts.append(
            pd.DataFrame(
                {
                    "generation": np.arange(values.shape[0], dtype=np.int64),
                    "metric": name,
                    "mean": values.mean(axis=1),
                    "median": np.median(values, axis=1),
                    "std": std,
                }
            )
        )
    if not parts:
        empty = {c: pd.Series(dtype=float) for c in FRAME_COLUMNS}
        empty.update(generation=pd.Series(dtype=np.int64), metric=pd.Series(dtype=object))
        return pd.DataFrame(empty)[list(FRAME_COLUMNS)]
    return pd.concat(parts, ignore_index=True)[list(FRAME_COLUMNS)]
