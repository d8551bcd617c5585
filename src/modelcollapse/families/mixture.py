"""Gaussian-mixture algebra for the ``gmm`` family: densities, the closed-form L2
distance between mixtures, sampling, and EM batched over chains.

Everything is batched over leading axes (the chains of an ensemble); a single model
is a batch of one. The batched EM follows scikit-learn's ``GaussianMixture`` (k-means
initialisation, M-step, ``reg_covar``, stopping rule), so ensembles and single models
fit the same way.
"""

from __future__ import annotations

import math

import numpy as np

from modelcollapse.ensemble import batched_categorical
from modelcollapse.families.gaussian import psd_factor

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
REG_COVAR = 1e-6  # scikit-learn's default, added to every covariance diagonal


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


def sample_rows(weights, means, covs, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows per chain: ``(K, C)``, ``(K, C, d)``, ``(K, C, d, d)`` -> ``(K, n, d)``."""
    comp = batched_categorical(weights, n, rng)
    chain = np.arange(weights.shape[0])[:, None]
    z = rng.standard_normal((*comp.shape, means.shape[-1]))
    factor = psd_factor(covs)[chain, comp]  # (K, n, d, d)
    return means[chain, comp] + (factor @ z[..., None])[..., 0]


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
    assert best is not None  # n_init >= 1
    return best[0], best[1], best[2], best[3]
