"""Counts from a Poisson distribution, fitted by their mean (the MLE of the rate).

Refitting on its own samples makes the rate a martingale: ``E[rate_g] = rate`` while
``E[(rate_g - rate)^2] = (g + 1) rate / N`` grows linearly in the generation ``g``
(each refit adds the variance ``rate_{g-1} / N`` of a mean of N counts), and every
chain is eventually absorbed at rate 0: collapse.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
import pyarrow as pa

from modelcollapse import tables
from modelcollapse.ensemble import BatchedFamily, equivalent_to_replace
from modelcollapse.families.base import Estimator, Family
from modelcollapse.settings import RunSettings

NAME = "poisson"
COLUMN = "count"


class Model(Estimator):
    """``Poisson(rate_)``; ``rate_`` is a one-element array (safetensors stores arrays)."""

    family = NAME
    _param_names = ("random_state",)
    _state_names = ("rate_",)

    def __init__(self, *, random_state: Any = None) -> None:
        self.random_state = random_state

    def fit(self, data: pa.Table) -> Self:
        counts = tables.column(data, COLUMN, np.float64)
        if counts.size == 0:
            raise ValueError("cannot fit a Poisson rate on zero rows")
        self.rate_ = np.array([counts.mean()])
        return self

    def sample(self, n: int, rng: np.random.Generator) -> pa.Table:
        self._check_fitted()
        return tables.from_columns({COLUMN: rng.poisson(self.rate_[0], n).astype(np.int64)})

    def score(self, data: pa.Table) -> np.ndarray:
        """``log P(count)`` per row; a collapsed model (rate 0) gives -inf to counts > 0."""
        self._check_fitted()
        k = tables.column(data, COLUMN, np.float64)
        rate = float(self.rate_[0])
        log_factorial = np.array([math.lgamma(v + 1.0) for v in k])
        if rate == 0.0:
            return np.where(k == 0, 0.0, -np.inf)
        return k * math.log(rate) - rate - log_factorial


def truth_from_spec(spec: Mapping[str, Any]) -> Model:
    truth = Model()
    truth.rate_ = np.array([float(spec["rate"])])
    return truth


def build_model(options: Mapping[str, Any], truth: Model, random_state: int) -> Model:
    return Model(random_state=random_state)


def _measure(truth: Model, rate: np.ndarray) -> dict[str, np.ndarray]:
    return {"rate": rate, "rate_sq_error": (rate - truth.rate_[0]) ** 2}


def evaluate(model: Model, truth: Model, test: pa.Table, samples: pa.Table) -> dict[str, float]:
    return {k: float(v[0]) for k, v in _measure(truth, model.rate_).items()}


def batched(truth: Model, options: Mapping[str, Any]) -> BatchedFamily:
    """Chains as rows ``(K, n)`` of counts; params: the rates ``(K,)``."""
    return BatchedFamily(
        draw_truth=lambda chains, n, rng: rng.poisson(truth.rate_[0], (chains, n)),
        fit=lambda rows, rng: rows.mean(axis=-1),
        sample=lambda rate, n, rng: rng.poisson(rate[:, None], (rate.shape[0], n)),
        measure=lambda rate, samples: _measure(truth, rate),
    )


def theory(truth: Model, settings: RunSettings) -> dict[str, np.ndarray]:
    """Replace: ``E[rate_g] = rate``, ``E[(rate_g - rate)^2] = (g + 1) rate / N``."""
    n = settings.samples_per_generation
    if not equivalent_to_replace(settings.regime, n, settings.real_fraction):
        return {}
    rate, g = float(truth.rate_[0]), np.arange(settings.generations)
    return {"rate": np.full(g.shape, rate), "rate_sq_error": (g + 1) * rate / n}


FAMILY = Family(
    name=NAME,
    model=Model,
    schema=Path(__file__).with_name("poisson.yaml"),
    build_model=build_model,
    evaluate=evaluate,
    key_metrics=("rate_sq_error",),
    truth_from_spec=truth_from_spec,
    batched=batched,
    theory=theory,
    snapshots=None,
)
