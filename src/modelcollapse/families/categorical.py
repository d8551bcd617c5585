"""Categorical distribution over ``K`` symbols fitted by empirical frequencies.

Refitting on its own samples is the neutral Wright-Fisher model: the tails
(rare symbols) vanish first and every chain is absorbed in a single symbol
(Shumailov et al. 2023, Sec. 4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pyarrow as pa

from modelcollapse import tables
from modelcollapse.ensemble import BatchedFamily, batched_categorical, equivalent_to_replace
from modelcollapse.families.base import Estimator, Family, builtin_schema

if TYPE_CHECKING:
    from modelcollapse.settings import RunSettings

NAME = "categorical"
COLUMN = "symbol"


class Model(Estimator):
    """``probs_[k]`` = share of symbol ``k`` among the training rows."""

    family = NAME
    _param_names = ("num_symbols", "random_state")
    _state_names = ("probs_",)

    def __init__(self, *, num_symbols: int, random_state: Any = None) -> None:
        self.num_symbols = num_symbols
        self.random_state = random_state

    def fit(self, data: pa.Table) -> Self:
        symbols = _symbols(data, int(self.num_symbols))
        if len(symbols) == 0:
            raise ValueError("cannot fit a categorical on zero rows")
        counts = np.bincount(symbols, minlength=int(self.num_symbols))
        self.probs_ = counts / counts.sum()
        return self

    def sample(self, n: int, rng: np.random.Generator) -> pa.Table:
        self._check_fitted()
        draws = batched_categorical(self.probs_[None, :], n, rng)[0]
        return tables.from_columns({COLUMN: draws.astype(np.int64)})

    def score(self, data: pa.Table) -> np.ndarray:
        """``log probs_[symbol]`` per row (``-inf`` for a symbol the model lost)."""
        self._check_fitted()
        with np.errstate(divide="ignore"):
            return np.log(self.probs_[_symbols(data, len(self.probs_))])


def _symbols(data: pa.Table, num_symbols: int) -> np.ndarray:
    symbols = tables.column(data, COLUMN)
    if not np.issubdtype(symbols.dtype, np.integer):
        raise ValueError(f"column {COLUMN!r} must hold integers")
    if len(symbols) and (symbols.min() < 0 or symbols.max() >= num_symbols):
        raise ValueError(f"symbols must lie in 0..{num_symbols - 1}")
    return symbols.astype(np.int64)


def zipf_probs(num_symbols: int, exponent: float) -> np.ndarray:
    """``p_k proportional to 1/(k+1)^a`` for ``k = 0..K-1``."""
    weights = 1.0 / np.arange(1, num_symbols + 1, dtype=float) ** exponent
    return weights / weights.sum()


def memory_footprint(spec: Mapping[str, Any]) -> tuple[int, int]:
    """One symbol per row; a model is ``num_symbols`` probabilities (modelcollapse.budget)."""
    return 1, int(spec["num_symbols"])


def truth_from_spec(spec: Mapping[str, Any]) -> Model:
    """``{num_symbols: K, zipf_exponent: a}`` -> the true (Zipf) categorical."""
    unknown = set(spec) - {"num_symbols", "zipf_exponent"}
    if unknown:
        raise ValueError(f"categorical truth: unknown key {sorted(unknown)[0]!r}")
    for key in ("num_symbols", "zipf_exponent"):
        if key not in spec:
            raise ValueError(f"categorical truth: missing key {key!r}")
    k = spec["num_symbols"]
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"categorical truth: 'num_symbols' must be a positive integer, got {k!r}")
    a = spec["zipf_exponent"]
    if isinstance(a, bool) or not isinstance(a, int | float) or not math.isfinite(a) or a < 0:
        raise ValueError("categorical truth: 'zipf_exponent' must be a finite number >= 0")
    truth = Model(num_symbols=k)
    truth.probs_ = zipf_probs(k, a)
    return truth


def build_model(options: Mapping[str, Any], truth: Model, random_state: int) -> Model:
    return Model(num_symbols=int(truth.num_symbols), random_state=random_state)


def distribution_metrics(probs: np.ndarray, true_probs: np.ndarray) -> dict[str, np.ndarray]:
    """Gini impurity, support size, entropy (nats, 0 log 0 = 0), TV distance; batched."""
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(probs > 0, probs * np.log(probs), 0.0)
    return {
        "gini_impurity": 1.0 - (probs**2).sum(-1),
        "support_size": (probs > 0).sum(-1).astype(float),
        "entropy": -plogp.sum(-1),
        "tv_distance": 0.5 * np.abs(probs - true_probs).sum(-1),
    }


def evaluate(model: Model, truth: Model, test: pa.Table, samples: pa.Table) -> dict[str, float]:
    model._check_fitted()
    return {k: float(v) for k, v in distribution_metrics(model.probs_, truth.probs_).items()}


def batched(truth: Model, options: Mapping[str, Any]) -> BatchedFamily:
    """Vectorised chains: rows ``(K, n)`` of symbols; params ``probs (K, num_symbols)``."""
    size = int(truth.num_symbols)

    def summarize(rows: np.ndarray) -> tuple[np.ndarray]:
        chains = rows.shape[0]
        # One bincount for all chains: chain k's symbols are shifted by k * size.
        shifted = rows + np.arange(chains)[:, None] * size
        return (np.bincount(shifted.ravel(), minlength=chains * size).reshape(chains, size),)

    def fit_summary(summary: tuple, n: int) -> np.ndarray:
        return summary[0] / n

    def draw_truth(chains: int, n: int, rng: np.random.Generator) -> np.ndarray:
        return batched_categorical(np.broadcast_to(truth.probs_, (chains, size)), n, rng)

    return BatchedFamily(
        draw_truth=draw_truth,
        fit=lambda rows, rng: fit_summary(summarize(rows), rows.shape[1]),
        sample=lambda probs, n, rng: batched_categorical(probs, n, rng),
        measure=lambda probs, samples: distribution_metrics(probs, truth.probs_),
        summarize=summarize,
        fit_summary=fit_summary,
    )


def theory(truth: Model, settings: RunSettings) -> dict[str, np.ndarray]:
    """Replace: expected Gini impurity (Wright-Fisher heterozygosity decay)."""
    from modelcollapse import theory as closed_form  # scipy: the figures step only

    n = settings.samples_per_generation
    if not equivalent_to_replace(settings.regime, n, settings.real_fraction):
        return {}
    return {
        "gini_impurity": closed_form.categorical_gini_replace(truth.probs_, n, settings.generations)
    }


def fixation_probabilities(truth: Model) -> np.ndarray:
    """Probability that a replace chain fixes on each symbol (= the true probabilities)."""
    from modelcollapse import theory as closed_form  # scipy: the figures step only

    return closed_form.fixation_probabilities(truth.probs_)


FAMILY = Family(
    name=NAME,
    model=Model,
    schema=builtin_schema(NAME),
    build_model=build_model,
    evaluate=evaluate,
    key_metrics=("gini_impurity", "support_size"),
    metric_labels={
        "gini_impurity": "Gini impurity, 1 − Σ p̂²",
        "support_size": "symbols with probability > 0",
        "entropy": "entropy (nats)",
        "tv_distance": "total variation distance to the truth",
    },
    truth_from_spec=truth_from_spec,
    memory_footprint=memory_footprint,
    batched=batched,
    theory=theory,
    snapshots="probabilities",
)
