"""Gaussian mixture fitted by EM: Shumailov et al. 2023's GMM experiment.

A run's model and its ensemble's chains are fitted by the same EM in NumPy
(:func:`batched_em`, on a batch of one for a single model), with scikit-learn's
initialisation (k-means++ seeded k-means labels), M-step, regularisation and stopping
rule; tests/test_families.py checks it against ``sklearn.mixture.GaussianMixture``.
(Until 2026-11-27 a single model was scikit-learn's own: importing it took 2-4 s of
the 3 s a generation job took, in 2000 sequential jobs of the paper-scale study.)
Covariances are always stored as full ``(C, d, d)`` matrices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np
import pyarrow as pa

from modelcollapse import tables
from modelcollapse.ensemble import BatchedFamily
from modelcollapse.families.base import Estimator, Family, builtin_schema
from modelcollapse.families.gaussian import feature_names, features
from modelcollapse.families.mixture import (  # noqa: F401  (l2_density, batched_em: the family's API)
    COVARIANCE_TYPES,
    REG_COVAR,
    batched_em,
    component_summary,
    full_covariances,
    l2_density,
    mixture_logpdf,
    sample_rows,
)

NAME = "gmm"


class Model(Estimator):
    """Mixture ``sum_k weights_[k] N(means_[k], covariances_[k])``."""

    family = NAME
    _param_names = ("n_components", "covariance_type", "tol", "max_iter", "n_init", "random_state")
    _state_names = ("weights_", "means_", "covariances_")

    def __init__(
        self,
        *,
        n_components: int,
        covariance_type: str,
        tol: float,
        max_iter: int,
        n_init: int,
        random_state: Any = None,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, data: pa.Table) -> Self:
        weights, means, covariances, _ = batched_em(
            features(data)[None],
            int(self.n_components),
            np.random.default_rng(self.random_state),
            covariance_type=self.covariance_type,
            tol=float(self.tol),
            max_iter=int(self.max_iter),
            n_init=int(self.n_init),
        )
        self.weights_, self.means_, self.covariances_ = weights[0], means[0], covariances[0]
        return self

    @property
    def dim(self) -> int:
        return int(np.asarray(self.means_).shape[1])

    def sample(self, n: int, rng: np.random.Generator) -> pa.Table:
        self._check_fitted()
        return tables.from_matrix(
            sample_rows(self.weights_[None], self.means_[None], self.covariances_[None], n, rng)[0],
            feature_names(self.dim),
        )

    def score(self, data: pa.Table) -> np.ndarray:
        self._check_fitted()
        x = features(data, self.dim)
        return mixture_logpdf(x, self.weights_, self.means_, self.covariances_)


# --- the family contract ----------------------------------------------------------


def memory_footprint(spec: Mapping[str, Any]) -> tuple[int, int]:
    """``dim`` values per row; a model is a weight, mean and covariance per component
    (modelcollapse.budget)."""
    means = spec.get("means") or [[0.0]]
    dim, k = max(len(means[0]), 1), max(len(spec.get("weights") or ()), 1)
    return dim, k * (1 + dim + dim * dim)


def truth_from_spec(spec: Mapping[str, Any]) -> Model:
    """``{weights, means, covariances}`` -> the true mixture as a fitted Model."""
    unknown = set(spec) - {"weights", "means", "covariances"}
    if unknown:
        raise ValueError(f"gmm truth: unknown key {sorted(unknown)[0]!r}")
    for key in ("weights", "means", "covariances"):
        if key not in spec:
            raise ValueError(f"gmm truth: missing key {key!r}")
    weights, means, covs = (_spec_array(spec, key) for key in ("weights", "means", "covariances"))
    if weights.ndim != 1 or len(weights) == 0 or np.any(weights <= 0):
        raise ValueError("gmm truth: 'weights' must be a non-empty list of positive numbers")
    if abs(weights.sum() - 1.0) > 1e-6:
        raise ValueError(f"gmm truth: 'weights' must sum to 1, got {weights.sum()}")
    if means.ndim != 2 or means.shape[0] != len(weights) or not np.all(np.isfinite(means)):
        raise ValueError(f"gmm truth: 'means' must be {len(weights)} lists of equal length")
    c, d = means.shape
    if covs.shape != (c, d, d) or not np.allclose(covs, np.swapaxes(covs, 1, 2)):
        raise ValueError(f"gmm truth: 'covariances' must be {c} symmetric {d}x{d} matrices")
    if np.linalg.eigvalsh(covs).min() <= 0:
        raise ValueError("gmm truth: 'covariances' must be positive definite")
    truth = Model(**{**FAMILY.option_defaults(), "n_components": c})
    truth.weights_, truth.means_, truth.covariances_ = weights / weights.sum(), means, covs
    return truth


def _spec_array(spec: Mapping[str, Any], key: str) -> np.ndarray:
    try:
        return np.asarray(spec[key], dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"gmm truth: {key!r} is not a regular numeric array: {exc}") from exc


def build_model(options: Mapping[str, Any], truth: Model, random_state: int) -> Model:
    return Model(
        n_components=options["n_components"],
        covariance_type=options["covariance_type"],
        tol=float(options["tol"]),
        max_iter=options["max_iter"],
        n_init=options["n_init"],
        random_state=random_state,
    )


def evaluate(model: Model, truth: Model, test: pa.Table, samples: pa.Table) -> dict[str, float]:
    """The test NLL, and the batched :func:`batched` ``measure`` on a batch of one."""
    model._check_fitted()
    params = (model.weights_[None], model.means_[None], model.covariances_[None])
    measured = {k: float(v[0]) for k, v in _measure(truth, params).items()}
    return {"test_nll": float(-model.score(test).mean()), **measured}


def _measure(truth: Model, params: tuple) -> dict[str, np.ndarray]:
    t = (truth.weights_, truth.means_, truth.covariances_)
    return {"l2_density": l2_density(*params, *t), **component_summary(*params)}


def batched(truth: Model, options: Mapping[str, Any]) -> BatchedFamily:
    """Vectorised chains: rows ``(K, n, d)``; params ``(weights, means, covs)`` batched."""
    opts = {**options, "tol": float(options["tol"])}
    t = (truth.weights_, truth.means_, truth.covariances_)

    def draw_truth(chains: int, n: int, rng: np.random.Generator) -> np.ndarray:
        w, m, c = (np.broadcast_to(a, (chains, *a.shape)) for a in t)
        return sample_rows(w, m, c, n, rng)

    def fit(rows: np.ndarray, rng: np.random.Generator) -> tuple:
        return batched_em(
            rows,
            opts["n_components"],
            rng,
            covariance_type=opts["covariance_type"],
            tol=opts["tol"],
            max_iter=opts["max_iter"],
            n_init=opts["n_init"],
        )[:3]

    def measure(params: tuple, samples: np.ndarray) -> dict[str, np.ndarray]:
        return _measure(truth, params)

    return BatchedFamily(
        draw_truth=draw_truth,
        fit=fit,
        sample=lambda params, n, rng: sample_rows(params[0], params[1], params[2], n, rng),
        measure=measure,
    )


FAMILY = Family(
    name=NAME,
    model=Model,
    schema=builtin_schema(NAME),
    build_model=build_model,
    evaluate=evaluate,
    key_metrics=("l2_density", "test_nll"),
    metric_labels={
        "l2_density": "L2 distance² of density to the truth, ∫(p̂ − p)²",
        "test_nll": "test negative log-likelihood (nats per row)",
    },
    truth_from_spec=truth_from_spec,
    memory_footprint=memory_footprint,
    batched=batched,
    theory=None,  # no closed form is known for EM-fitted mixtures
)
