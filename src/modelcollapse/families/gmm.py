"""Gaussian mixture fitted by EM: Shumailov et al. 2023's GMM experiment.

Single models wrap ``sklearn.mixture.GaussianMixture``; ensembles run a batched
EM in NumPy over chains (:func:`batched_em`) with the same initialisation
(k-means labels), M-step, regularisation and stopping rule as scikit-learn.
Covariances are always stored as full ``(C, d, d)`` matrices.
"""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np
import pandas as pd

from modelcollapse.ensemble import BatchedFamily, batched_categorical, run_chains
from modelcollapse.families.base import Estimator
from modelcollapse.families.gaussian import feature_names, features, psd_factor

NAME = "gmm"
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
REG_COVAR = 1e-6  # scikit-learn's default, added to every covariance diagonal
DEFAULTS = {
    "n_components": 2,
    "covariance_type": "full",
    "tol": 1e-5,
    "max_iter": 2000,
    "n_init": 1,
}


class Model(Estimator):
    """Mixture ``sum_k weights_[k] N(means_[k], covariances_[k])``."""

    family = NAME
    _param_names = ("n_components", "covariance_type", "tol", "max_iter", "n_init", "random_state")
    _state_names = ("weights_", "means_", "covariances_")

    def __init__(
        self,
        *,
        n_components: int = 2,
        covariance_type: str = "full",
        tol: float = 1e-5,
        max_iter: int = 2000,
        n_init: int = 1,
        random_state: Any = None,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, data: pd.DataFrame) -> Self:
        from sklearn.mixture import GaussianMixture  # heavy import: only jobs that fit pay

        x = features(data)
        mixture = GaussianMixture(
            n_components=int(self.n_components),
            covariance_type=self.covariance_type,
            tol=float(self.tol),
            max_iter=int(self.max_iter),
            n_init=int(self.n_init),
            reg_covar=REG_COVAR,
            random_state=self.random_state,
        ).fit(x)
        self.weights_ = np.asarray(mixture.weights_, dtype=float)
        self.means_ = np.asarray(mixture.means_, dtype=float)
        self.covariances_ = full_covariances(
            mixture.covariances_, self.covariance_type, *self.means_.shape
        )
        return self

    @property
    def dim(self) -> int:
        return int(np.asarray(self.means_).shape[1])

    def sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        self._check_fitted()
        return pd.DataFrame(
            _sample_rows(self.weights_[None], self.means_[None], self.covariances_[None], n, rng)[
                0
            ],
            columns=feature_names(self.dim),
        )

    def score(self, data: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        x = features(data, self.dim)
        return mixture_logpdf(x, self.weights_, self.means_, self.covariances_)


def full_covariances(
    cov: np.ndarray, covariance_type: str, components: int, dim: int
) -> np.ndarray:
    """scikit-learn's covariance layouts -> full ``(C, d, d)`` matrices."""
    cov = np.asarray(cov, dtype=float)
    if covariance_type == "full":
        return cov.reshape(components, dim, dim).copy()
    if covariance_type == "tied":
        return np.broadcast_to(cov, (components, dim, dim)).copy()
    if covariance_type == "diag":
        return cov[:, :, None] * np.eye(dim)
    if covariance_type == "spherical":
        return cov[:, None, None] * np.eye(dim)
    raise ValueError(f"covariance_type: expected one of {list(COVARIANCE_TYPES)}")


# --- batched densities ----------------------------------------------------------


def component_logpdf(x: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """``log N(x_i; means_c, covs_c)``: x ``(..., n, d)`` -> ``(..., C, n)`` (Cholesky)."""
    dim = x.shape[-1]
    chol = np.linalg.cholesky(covs)
    whiten = np.linalg.inv(chol)
    diff = x[..., None, :, :] - means[..., :, None, :]
    maha = ((diff @ np.swapaxes(whiten, -1, -2)) ** 2).sum(-1)
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    return -0.5 * (dim * math.log(2 * math.pi) + logdet[..., None] + maha)


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """Plain max-shifted log-sum-exp (scipy's generic version is slower on small axes)."""
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.log(np.exp(a - top).sum(axis)) + np.squeeze(top, axis)


def mixture_logpdf(
    x: np.ndarray, weights: np.ndarray, means: np.ndarray, covs: np.ndarray
) -> np.ndarray:
    """Mixture log-density per row, batched over leading axes: ``(..., n)``."""
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    return _logsumexp(log_w[..., None] + component_logpdf(x, means, covs), axis=-2)


def _gaussian_overlap(w1, m1, s1, w2, m2, s2) -> np.ndarray:
    """``sum_ij w1_i w2_j int N(x; m1_i, S1_i) N(x; m2_j, S2_j) dx``, using
    ``int N(x; a, A) N(x; b, B) dx = N(a; b, A + B)``; batched over leading axes."""
    diff = m1[..., :, None, :] - m2[..., None, :, :]
    total = s1[..., :, None, :, :] + s2[..., None, :, :, :]
    maha = (diff * np.linalg.solve(total, diff[..., None])[..., 0]).sum(-1)
    logdet = np.linalg.slogdet(total)[1]
    dens = np.exp(-0.5 * (diff.shape[-1] * math.log(2 * math.pi) + logdet + maha))
    return (w1[..., :, None] * w2[..., None, :] * dens).sum((-2, -1))


def l2_density(*mixtures: np.ndarray) -> np.ndarray:
    """Closed-form ``int (p1 - p2)^2 dx`` between Gaussian mixtures (batched).

    Arguments: ``weights1, means1, covs1, weights2, means2, covs2``.
    """
    w1, m1, s1, w2, m2, s2 = mixtures
    value = (
        _gaussian_overlap(w1, m1, s1, w1, m1, s1)
        - 2.0 * _gaussian_overlap(w1, m1, s1, w2, m2, s2)
        + _gaussian_overlap(w2, m2, s2, w2, m2, s2)
    )
    return np.clip(value, 0.0, None)


def component_summary(
    weights: np.ndarray, means: np.ndarray, covs: np.ndarray
) -> dict[str, np.ndarray]:
    """``weight_k`` and ``spread_k = sqrt(tr cov_k / d)``; components sorted by first mean."""
    order = np.argsort(means[..., 0], axis=-1, kind="stable")
    w = np.take_along_axis(weights, order, axis=-1)
    spread = np.sqrt(np.trace(covs, axis1=-2, axis2=-1) / means.shape[-1])
    spread = np.take_along_axis(spread, order, axis=-1)
    out = {}
    for k in range(weights.shape[-1]):
        out[f"weight_{k}"] = w[..., k]
        out[f"spread_{k}"] = spread[..., k]
    return out


def _sample_rows(weights, means, covs, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows per chain: ``(K, C)``, ``(K, C, d)``, ``(K, C, d, d)`` -> ``(K, n, d)``."""
    comp = batched_categorical(weights, n, rng)
    chain = np.arange(weights.shape[0])[:, None]
    z = rng.standard_normal((*comp.shape, means.shape[-1]))
    factor = psd_factor(covs)[chain, comp]  # (K, n, d, d)
    return means[chain, comp] + (factor @ z[..., None])[..., 0]


# --- the family contract ----------------------------------------------------------


def memory_footprint(spec: dict) -> tuple[int, int]:
    """``dim`` values per row; a model is a weight, mean and covariance per component
    (modelcollapse.budget)."""
    means = spec.get("means") or [[0.0]]
    dim, k = max(len(means[0]), 1), max(len(spec.get("weights") or ()), 1)
    return dim, k * (1 + dim + dim * dim)


def truth_from_spec(spec: dict) -> Model:
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
    truth = Model(n_components=c)
    truth.weights_, truth.means_, truth.covariances_ = weights / weights.sum(), means, covs
    return truth


def _spec_array(spec: dict, key: str) -> np.ndarray:
    try:
        return np.asarray(spec[key], dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"gmm truth: {key!r} is not a regular numeric array: {exc}") from exc


def _options(options: dict | None) -> dict[str, Any]:
    options = dict(options or {})
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"gmm options: unknown key {sorted(unknown)[0]!r}")
    out = {**DEFAULTS, **options}
    for key in ("n_components", "max_iter", "n_init"):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"gmm options: {key!r} must be a positive integer, got {value!r}")
    if out["covariance_type"] not in COVARIANCE_TYPES:
        raise ValueError(f"gmm options: 'covariance_type' must be one of {list(COVARIANCE_TYPES)}")
    try:
        out["tol"] = float(out["tol"])  # YAML reads "1e-5" as a string
    except (TypeError, ValueError) as exc:
        raise ValueError(f"gmm options: 'tol' must be a number, got {out['tol']!r}") from exc
    if not out["tol"] > 0:
        raise ValueError("gmm options: 'tol' must be positive")
    return out


def build_model(options: dict, truth: Model, random_state: int) -> Model:
    return Model(**_options(options), random_state=random_state)


def evaluate(
    model: Model, truth: Model, test: pd.DataFrame, samples: pd.DataFrame
) -> dict[str, float]:
    model._check_fitted()
    params = (model.weights_, model.means_, model.covariances_)
    out = {
        "test_nll": float(-model.score(test).mean()),
        "l2_density": float(l2_density(*params, truth.weights_, truth.means_, truth.covariances_)),
    }
    out.update({k: float(v) for k, v in component_summary(*params).items()})
    return out


# --- batched EM over chains -------------------------------------------------------


def _m_step(x: np.ndarray, resp: np.ndarray, covariance_type: str):
    """Weights ``(K, C)``, means ``(K, C, d)``, full covs ``(K, C, d, d)`` from resp (K, C, n)."""
    nk = resp.sum(-1) + 10 * np.finfo(float).eps  # scikit-learn's guard for empty components
    means = (resp @ x) / nk[..., None]
    diff = x[:, None, :, :] - means[:, :, None, :]
    covs = np.swapaxes(resp[..., None] * diff, -1, -2) @ diff / nk[..., None, None]
    dim = x.shape[-1]
    if covariance_type == "tied":
        tied = (nk[..., None, None] * covs).sum(1) / nk.sum(-1)[:, None, None]
        covs = np.broadcast_to(tied[:, None], covs.shape).copy()
    elif covariance_type == "diag":
        covs = np.diagonal(covs, axis1=-2, axis2=-1)[..., None] * np.eye(dim)
    elif covariance_type == "spherical":
        covs = (np.trace(covs, axis1=-2, axis2=-1) / dim)[..., None, None] * np.eye(dim)
    covs = covs + REG_COVAR * np.eye(dim)
    return nk / nk.sum(-1, keepdims=True), means, covs


def _kmeans_labels(x: np.ndarray, components: int, rng: np.random.Generator, iters: int = 100):
    """Batched k-means++ seeding then Lloyd iterations; labels ``(K, n)``."""
    chains, n, _ = x.shape
    rows = np.arange(chains)
    centers = np.empty((chains, components, x.shape[-1]))
    centers[:, 0] = x[rows, rng.integers(n, size=chains)]
    nearest = ((x - centers[:, :1]) ** 2).sum(-1)
    for c in range(1, components):
        total = nearest.sum(-1, keepdims=True)
        probs = np.where(total > 0, nearest / np.where(total > 0, total, 1.0), 1.0 / n)
        centers[:, c] = x[rows, batched_categorical(probs, 1, rng)[:, 0]]
        nearest = np.minimum(nearest, ((x - centers[:, c : c + 1]) ** 2).sum(-1))
    labels = None
    for _ in range(iters):
        dist = ((x[:, None] - centers[:, :, None]) ** 2).sum(-1)  # (K, C, n)
        new = dist.argmin(1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        onehot = (labels[:, None, :] == np.arange(components)[None, :, None]).astype(float)
        counts = onehot.sum(-1)[..., None]
        centers = np.where(counts > 0, (onehot @ x) / np.maximum(counts, 1.0), centers)
    return labels


def batched_em(
    x: np.ndarray,
    components: int,
    rng: np.random.Generator,
    *,
    covariance_type: str = "full",
    tol: float = 1e-5,
    max_iter: int = 2000,
    n_init: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """EM for ``K`` mixtures at once on rows ``(K, n, d)``.

    Each chain stops when its mean log-likelihood changes by less than ``tol``
    (scikit-learn's rule) and is then frozen: later iterations run only on the
    chains still active. With ``n_init > 1`` each chain keeps its best run.
    Returns weights, means, covariances and the final mean log-likelihood.
    """
    chains = x.shape[0]
    best = None
    for _ in range(n_init):
        labels = _kmeans_labels(x, components, rng)
        resp = (labels[:, None, :] == np.arange(components)[None, :, None]).astype(float)
        w, mu, cov = _m_step(x, resp, covariance_type)
        ll = np.full(chains, -np.inf)
        active = np.arange(chains)
        for _ in range(max_iter):
            xa = x if len(active) == chains else x[active]
            log_prob = np.log(w[active])[..., None] + component_logpdf(xa, mu[active], cov[active])
            norm = _logsumexp(log_prob, axis=1)
            new_ll = norm.mean(-1)
            w[active], mu[active], cov[active] = _m_step(
                xa, np.exp(log_prob - norm[:, None]), covariance_type
            )
            done = np.abs(new_ll - ll[active]) < tol
            ll[active] = new_ll
            active = active[~done]
            if len(active) == 0:
                break
        if best is None:
            best = [w, mu, cov, ll]
        else:
            better = ll > best[3]
            for i, new in enumerate((w, mu, cov, ll)):
                best[i] = np.where(better.reshape((-1,) + (1,) * (new.ndim - 1)), new, best[i])
    return tuple(best)


def batched(truth: Model, options: dict) -> BatchedFamily:
    """Vectorised chains: rows ``(K, n, d)``; params ``(weights, means, covs)`` batched."""
    opts = _options(options)
    t = (truth.weights_, truth.means_, truth.covariances_)

    def draw_truth(chains: int, n: int, rng: np.random.Generator) -> np.ndarray:
        return _sample_rows(*(np.broadcast_to(a, (chains, *a.shape)) for a in t), n, rng)

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
        return {"l2_density": l2_density(*params, *t), **component_summary(*params)}

    return BatchedFamily(
        draw_truth=draw_truth,
        fit=fit,
        sample=lambda params, n, rng: _sample_rows(*params, n, rng),
        measure=measure,
    )


def simulate_ensemble(
    truth: Model,
    *,
    options: dict,
    regime: str,
    generations: int,
    samples_per_generation: int,
    real_fraction: float | None,
    chains: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    return run_chains(
        batched(truth, options),
        regime=regime,
        generations=generations,
        samples_per_generation=samples_per_generation,
        real_fraction=real_fraction,
        chains=chains,
        rng=rng,
    )


def theory(
    truth: Model,
    *,
    options: dict,
    regime: str,
    generations: int,
    samples_per_generation: int,
    real_fraction: float | None,
) -> dict[str, np.ndarray]:
    """No closed form is known for EM-fitted mixtures (Shumailov et al. 2023 study
    them empirically), so there is nothing to predict."""
    _options(options)
    return {}
