"""Linear regression ``y = x . w + sigma eps`` with ``x ~ N(0, I_d)``, fitted by OLS.

The setting of Dohmatob, Feng & Kempe 2024 and Gerstgrasser et al. 2024: each
generation's labels come from the previous model on fresh inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pyarrow as pa

from modelcollapse import tables
from modelcollapse.ensemble import BatchedFamily, equivalent_to_replace
from modelcollapse.families.base import Estimator, Family, builtin_schema
from modelcollapse.families.gaussian import feature_names, features

if TYPE_CHECKING:
    from modelcollapse.settings import RunSettings

NAME = "linear_regression"


class Model(Estimator):
    """OLS without intercept; ``noise_std`` is the (known) label noise it samples with."""

    family = NAME
    _param_names = ("noise_std", "random_state")
    _state_names = ("coef_",)

    def __init__(self, *, noise_std: float, random_state: Any = None) -> None:
        self.noise_std = noise_std
        self.random_state = random_state

    def fit(self, data: pa.Table) -> Self:
        x, y = features(data), _labels(data)
        if len(x) < x.shape[1]:
            raise ValueError(f"OLS needs at least {x.shape[1]} rows, got {len(x)}")
        self.coef_ = np.linalg.lstsq(x, y, rcond=None)[0]
        return self

    @property
    def dim(self) -> int:
        return int(np.asarray(self.coef_).shape[0])

    def sample(self, n: int, rng: np.random.Generator) -> pa.Table:
        self._check_fitted()
        x = rng.standard_normal((n, self.dim))
        y = x @ self.coef_ + float(self.noise_std) * rng.standard_normal(n)
        return tables.from_columns(
            {**{name: x[:, i] for i, name in enumerate(feature_names(self.dim))}, "y": y}
        )

    def score(self, data: pa.Table) -> np.ndarray:
        """Conditional log-likelihood ``log N(y; x . coef_, noise_std^2)`` per row.

        The input density ``N(0, I)`` is fixed, not learned, so it is left out.
        """
        self._check_fitted()
        resid = _labels(data) - features(data, self.dim) @ self.coef_
        var = float(self.noise_std) ** 2
        return -0.5 * (resid**2 / var + math.log(2.0 * math.pi * var))


def _labels(data: pa.Table) -> np.ndarray:
    return tables.column(data, "y", np.float64)


def memory_footprint(spec: Mapping[str, Any]) -> tuple[int, int]:
    """``dim`` features and a target per row; the fit holds a ``dim x dim`` Gram matrix
    (modelcollapse.budget)."""
    dim = int(spec["dim"])
    return dim + 1, dim * dim


def truth_from_spec(spec: Mapping[str, Any]) -> Model:
    """``{dim, noise_std, weights (optional, default ones(d)/sqrt(d))}`` -> the true model."""
    unknown = set(spec) - {"dim", "noise_std", "weights"}
    if unknown:
        raise ValueError(f"linear_regression truth: unknown key {sorted(unknown)[0]!r}")
    for key in ("dim", "noise_std"):
        if key not in spec:
            raise ValueError(f"linear_regression truth: missing key {key!r}")
    dim = spec["dim"]
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"linear_regression truth: 'dim' must be a positive integer, got {dim!r}")
    noise = (
        float(_spec_array(spec["noise_std"], "noise_std"))
        if np.ndim(spec["noise_std"]) == 0
        else -1.0
    )
    weights = _spec_array(spec.get("weights", np.ones(dim) / math.sqrt(dim)), "weights")
    if not noise >= 0 or not math.isfinite(noise):
        raise ValueError("linear_regression truth: 'noise_std' must be >= 0")
    if weights.shape != (dim,) or not np.all(np.isfinite(weights)):
        raise ValueError(f"linear_regression truth: 'weights' must be {dim} finite numbers")
    truth = Model(noise_std=noise)
    truth.coef_ = weights
    return truth


def _spec_array(value: Any, key: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"linear_regression truth: {key!r} is not numeric: {exc}") from exc


def build_model(options: Mapping[str, Any], truth: Model, random_state: int) -> Model:
    return Model(noise_std=float(truth.noise_std), random_state=random_state)


def evaluate(model: Model, truth: Model, test: pa.Table, samples: pa.Table) -> dict[str, float]:
    """``excess_risk = ||w_g - w*||^2`` (the excess squared risk, since E xx^T = I): the
    batched :func:`batched` ``measure`` on a batch of one."""
    model._check_fitted()
    return {k: float(v[0]) for k, v in _measure(truth, model.coef_[None]).items()}


def _measure(truth: Model, coef: np.ndarray) -> dict[str, np.ndarray]:
    return {"excess_risk": ((coef - truth.coef_) ** 2).sum(-1)}


def batched(truth: Model, options: Mapping[str, Any]) -> BatchedFamily:
    """Vectorised chains: rows ``(K, n, d+1)`` with ``y`` last; params ``coef (K, d)``."""
    dim, noise = truth.dim, float(truth.noise_std)

    def rows_for(coef: np.ndarray, chains: int, n: int, rng: np.random.Generator) -> np.ndarray:
        x = rng.standard_normal((chains, n, dim))
        y = np.einsum("knd,kd->kn", x, np.broadcast_to(coef, (chains, dim)))
        y += noise * rng.standard_normal((chains, n))
        return np.concatenate([x, y[..., None]], axis=-1)

    def summarize(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = rows[..., :dim], rows[..., dim]
        return np.swapaxes(x, -1, -2) @ x, np.einsum("knd,kn->kd", x, y)

    def fit_summary(summary: tuple, n: int) -> np.ndarray:
        gram, moment = summary
        return np.linalg.solve(gram, moment[..., None])[..., 0]

    def measure(coef: np.ndarray, samples: np.ndarray) -> dict[str, np.ndarray]:
        return _measure(truth, coef)

    return BatchedFamily(
        draw_truth=lambda chains, n, rng: rows_for(truth.coef_, chains, n, rng),
        fit=lambda rows, rng: fit_summary(summarize(rows), rows.shape[1]),
        sample=lambda coef, n, rng: rows_for(coef, coef.shape[0], n, rng),
        measure=measure,
        summarize=summarize,
        fit_summary=fit_summary,
    )


def theory(truth: Model, settings: RunSettings) -> dict[str, np.ndarray]:
    """Replace: Dohmatob et al. 2024; accumulate: Gerstgrasser et al. 2024 (see theory.py)."""
    from modelcollapse import theory as closed_form  # scipy: the figures step only

    n, generations = settings.samples_per_generation, settings.generations
    args = (float(truth.noise_std), truth.dim, n, generations)
    if n <= truth.dim + 1:
        return {}
    if equivalent_to_replace(settings.regime, n, settings.real_fraction):
        return {"excess_risk": closed_form.linreg_replace_excess_risk(*args)}
    if settings.regime == "accumulate":
        return {
            "excess_risk": closed_form.linreg_accumulate_excess_risk(*args),
            "excess_risk/bound": closed_form.linreg_accumulate_bound(*args),
        }
    return {}


FAMILY = Family(
    name=NAME,
    model=Model,
    schema=builtin_schema(NAME),
    build_model=build_model,
    evaluate=evaluate,
    key_metrics=("excess_risk",),
    metric_labels={"excess_risk": "excess risk, ‖ŵ − w*‖²"},
    truth_from_spec=truth_from_spec,
    memory_footprint=memory_footprint,
    batched=batched,
    theory=theory,
    snapshots=None,  # a regression: no distribution of x to watch
)
