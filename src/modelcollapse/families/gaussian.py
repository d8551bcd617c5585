"""Multivariate Gaussian: the family of Shumailov et al.'s single-Gaussian theorem.

Also holds the Gaussian linear algebra the other families share (feature columns,
PSD square roots, batched log-densities, the Gaussian 2-Wasserstein distance).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pyarrow as pa

from modelcollapse import tables
from modelcollapse.ensemble import BatchedFamily, equivalent_to_replace
from modelcollapse.families.base import Estimator, Family, builtin_schema
from modelcollapse.regimes import real_row_count

if TYPE_CHECKING:
    from modelcollapse.settings import RunSettings

NAME = "gaussian"
ESTIMATORS = {"unbiased": 1, "mle": 0}  # estimator -> ddof
_FEATURE = re.compile(r"x(\d+)")


# --- shared helpers ---------------------------------------------------------------


def feature_names(dim: int) -> list[str]:
    return [f"x{i}" for i in range(dim)]


def features(data: pa.Table, dim: int | None = None) -> np.ndarray:
    """The ``x0..x{d-1}`` columns as a float64 ``(n, d)`` array (other columns ignored)."""
    if dim is None:
        found = sorted(
            int(m.group(1)) for c in data.column_names if (m := _FEATURE.fullmatch(str(c)))
        )
        dim = len(found)
        if dim == 0 or found != list(range(dim)):
            raise ValueError(f"data need columns x0..x{{d-1}}, got {data.column_names}")
    return tables.matrix(data, feature_names(dim))


def psd_factor(cov: np.ndarray) -> np.ndarray:
    """``F`` with ``F @ F.T == cov`` for (batched) symmetric PSD ``cov``; safe when singular."""
    vals, vecs = np.linalg.eigh(cov)
    return vecs * np.sqrt(np.clip(vals, 0.0, None))[..., None, :]


def psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root of (batched) symmetric PSD matrices via ``eigh``."""
    vals, vecs = np.linalg.eigh(cov)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))[..., None, :]) @ np.swapaxes(vecs, -1, -2)


def w2_sq(mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray, cov2: np.ndarray) -> np.ndarray:
    """Squared 2-Wasserstein distance between Gaussians (batched over leading axes).

    ``||m1-m2||^2 + tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2)``; the trace of the
    inner square root is the sum of square roots of its eigenvalues (clipped at 0).
    """
    root2 = psd_sqrt(cov2)
    inner = root2 @ cov1 @ root2
    inner = 0.5 * (inner + np.swapaxes(inner, -1, -2))
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(inner), 0.0, None)).sum(-1)
    trace = np.trace(cov1, axis1=-2, axis2=-1) + np.trace(cov2, axis1=-2, axis2=-1)
    dist = ((np.asarray(mean1) - np.asarray(mean2)) ** 2).sum(-1) + trace - 2.0 * cross
    return np.clip(dist, 0.0, None)


def _batched_moments(rows: np.ndarray, ddof: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(..., d)`` and covariance ``(..., d, d)`` of rows ``(..., n, d)``."""
    mean = rows.mean(axis=-2)
    diff = rows - mean[..., None, :]
    cov = np.swapaxes(diff, -1, -2) @ diff / (rows.shape[-2] - ddof)
    return mean, cov


# --- the estimator ----------------------------------------------------------------


class Model(Estimator):
    """``N(mean_, covariance_)`` fitted by moments; samples ``N(mean_, sample_scale*cov)``.

    ``sample_scale`` is Alemohammad et al.'s sampling bias lambda: it changes only
    what the model generates; ``score`` is the density of the fitted Gaussian.
    """

    family = NAME
    _param_names = ("estimator", "sample_scale", "random_state")
    _state_names = ("mean_", "covariance_")

    def __init__(self, *, estimator: str, sample_scale: float, random_state: Any = None) -> None:
        self.estimator = estimator
        self.sample_scale = sample_scale
        self.random_state = random_state

    def fit(self, data: pa.Table) -> Self:
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator: expected one of {list(ESTIMATORS)}")
        x = features(data)
        if len(x) <= ESTIMATORS[self.estimator]:
            raise ValueError(f"need more than {ESTIMATORS[self.estimator]} rows, got {len(x)}")
        self.mean_, self.covariance_ = _batched_moments(x, ESTIMATORS[self.estimator])
        return self

    @property
    def dim(self) -> int:
        return int(np.asarray(self.mean_).shape[0])

    def sample(self, n: int, rng: np.random.Generator) -> pa.Table:
        self._check_fitted()
        factor = psd_factor(float(self.sample_scale) * self.covariance_)
        x = self.mean_ + rng.standard_normal((n, self.dim)) @ factor.T
        return tables.from_matrix(x, feature_names(self.dim))

    def score(self, data: pa.Table) -> np.ndarray:
        self._check_fitted()
        return gaussian_logpdf(features(data, self.dim), self.mean_, self.covariance_)


def gaussian_logpdf(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log N(x; mean, cov), rows of ``x``; a singular ``cov`` (a collapsed model) is
    handled as scipy's ``allow_singular``: density on its support, -inf off it.

    NumPy only: scipy.stats costs ~0.9 s to import, paid by every generation job.
    """
    eigvals, eigvecs = np.linalg.eigh(np.asarray(cov, dtype=np.float64))
    cutoff = max(eigvals.max(initial=0.0), 0.0) * 1e6 * np.finfo(np.float64).eps
    keep = eigvals > cutoff
    centred = np.atleast_2d(x) - mean
    proj = centred @ eigvecs
    maha = np.sum(proj[:, keep] ** 2 / eigvals[keep], axis=1)
    logdet = np.sum(np.log(eigvals[keep]))
    out = -0.5 * (keep.sum() * np.log(2 * np.pi) + logdet + maha)
    if not keep.all():  # distance off the model's support
        off = np.sqrt(np.sum(proj[:, ~keep] ** 2, axis=1))
        out[off > 1e-9 * (1 + np.abs(centred).max(axis=1))] = -np.inf
    return out


# --- the family contract ----------------------------------------------------------


def truth_from_spec(spec: Mapping[str, Any]) -> Model:
    """``{dim, mean (float or list), std | cov}`` -> the true Gaussian as a fitted Model."""
    unknown = set(spec) - {"dim", "mean", "std", "cov"}
    if unknown:
        raise ValueError(f"gaussian truth: unknown key {sorted(unknown)[0]!r}")
    if "dim" not in spec:
        raise ValueError("gaussian truth: missing key 'dim'")
    dim = spec["dim"]
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"gaussian truth: 'dim' must be a positive integer, got {dim!r}")
    mean = _spec_array(spec.get("mean", 0.0), "mean")
    if mean.ndim == 0:
        mean = np.full(dim, float(mean))
    if mean.shape != (dim,) or not np.all(np.isfinite(mean)):
        raise ValueError(f"gaussian truth: 'mean' must be a number or {dim} finite numbers")
    if ("std" in spec) == ("cov" in spec):
        raise ValueError("gaussian truth: give exactly one of keys 'std' and 'cov'")
    if "std" in spec:
        std = float(_spec_array(spec["std"], "std")) if np.ndim(spec["std"]) == 0 else -1.0
        if not std > 0 or not math.isfinite(std):
            raise ValueError(f"gaussian truth: 'std' must be positive, got {spec['std']!r}")
        cov = std**2 * np.eye(dim)
    else:
        cov = _spec_array(spec["cov"], "cov")
        if cov.shape != (dim, dim) or not np.allclose(cov, cov.T):
            raise ValueError(f"gaussian truth: 'cov' must be a symmetric {dim}x{dim} matrix")
        if np.linalg.eigvalsh(cov).min() <= 0:
            raise ValueError("gaussian truth: 'cov' must be positive definite")
    truth = Model(estimator="unbiased", sample_scale=1.0)  # the truth: its own moments
    truth.mean_, truth.covariance_ = mean, cov
    return truth


def _spec_array(value: Any, key: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"gaussian truth: {key!r} is not a regular numeric array: {exc}") from exc


def build_model(options: Mapping[str, Any], truth: Model, random_state: int) -> Model:
    return Model(
        estimator=options["estimator"],
        sample_scale=float(options["sample_scale"]),
        random_state=random_state,
    )


def _tail_share(samples: np.ndarray, truth: Model) -> np.ndarray:
    """Share of rows (last-but-one axis) beyond Mahalanobis distance 3 under the truth."""
    whiten = np.linalg.inv(np.linalg.cholesky(truth.covariance_))
    z = (samples - truth.mean_) @ whiten.T
    return ((z**2).sum(-1) > 9.0).mean(-1)


def evaluate(model: Model, truth: Model, test: pa.Table, samples: pa.Table) -> dict[str, float]:
    """The batched :func:`batched` ``measure`` on a batch of one, and the test NLL."""
    model._check_fitted()
    params = (model.mean_[None], model.covariance_[None])
    rows = features(samples, truth.dim)[None]
    metrics = {k: float(v[0]) for k, v in _measure(truth, params, rows).items()}
    return {**metrics, "test_nll": float(-model.score(test).mean())}


def _measure(truth: Model, params: tuple, samples: np.ndarray) -> dict[str, np.ndarray]:
    mean, cov = params
    return {
        "mean_sq_error": ((mean - truth.mean_) ** 2).sum(-1),
        "var_trace": np.trace(cov, axis1=-2, axis2=-1),
        "w2_sq": w2_sq(mean, cov, truth.mean_, truth.covariance_),
        "tail_mass": _tail_share(samples, truth),
    }


def batched(truth: Model, options: Mapping[str, Any]) -> BatchedFamily:
    """Vectorised Gaussian chains: params are ``(means (K, d), covs (K, d, d))``."""
    ddof, sample_scale = ESTIMATORS[options["estimator"]], float(options["sample_scale"])
    dim, true_factor = truth.dim, psd_factor(truth.covariance_)

    def draw_truth(chains: int, n: int, rng: np.random.Generator) -> np.ndarray:
        return truth.mean_ + rng.standard_normal((chains, n, dim)) @ true_factor.T

    def fit(rows: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return _batched_moments(rows, ddof)

    def sample(params: tuple, n: int, rng: np.random.Generator) -> np.ndarray:
        mean, cov = params
        factor = psd_factor(sample_scale * cov)
        z = rng.standard_normal((mean.shape[0], n, dim))
        return mean[:, None, :] + z @ np.swapaxes(factor, -1, -2)

    def summarize(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Moments about the true mean: no cancellation when |mean| >> std.
        centred = rows - truth.mean_
        return centred.sum(-2), np.swapaxes(centred, -1, -2) @ centred

    def fit_summary(summary: tuple, n: int) -> tuple[np.ndarray, np.ndarray]:
        shift = summary[0] / n
        cov = (summary[1] - n * shift[..., :, None] * shift[..., None, :]) / (n - ddof)
        return truth.mean_ + shift, cov

    def measure(params: tuple, samples: np.ndarray) -> dict[str, np.ndarray]:
        return _measure(truth, params, samples)

    return BatchedFamily(draw_truth, fit, sample, measure, summarize, fit_summary)


def theory(truth: Model, settings: RunSettings) -> dict[str, np.ndarray]:
    """Closed forms of :func:`modelcollapse.theory.gaussian_replace` (replace regime,
    or mix/fresh with zero human rows, which is the same chain) and of
    :func:`modelcollapse.theory.gaussian_mix` (mix and fresh)."""
    from modelcollapse import theory as closed_form  # scipy: the figures step only

    n = settings.samples_per_generation
    if settings.regime in ("mix", "fresh") and not equivalent_to_replace(
        settings.regime, n, settings.real_fraction
    ):
        assert settings.real_fraction is not None  # validated: mix and fresh need one
        return closed_form.gaussian_mix(
            truth.covariance_,
            samples=n,
            human_rows=real_row_count(n, settings.real_fraction),
            generations=settings.generations,
            estimator=settings.options["estimator"],
            sample_scale=float(settings.options["sample_scale"]),
        )
    if not equivalent_to_replace(settings.regime, n, settings.real_fraction):
        return {}
    return closed_form.gaussian_replace(
        truth.covariance_,
        samples=n,
        generations=settings.generations,
        estimator=settings.options["estimator"],
        sample_scale=float(settings.options["sample_scale"]),
    )


FAMILY = Family(
    name=NAME,
    model=Model,
    schema=builtin_schema(NAME),
    build_model=build_model,
    evaluate=evaluate,
    key_metrics=("var_trace", "w2_sq"),
    metric_labels={
        "var_trace": "variance, tr Σ̂ (truth: tr Σ)",
        "w2_sq": "squared Wasserstein-2 distance to the truth",
        "mean_sq_error": "squared error of the mean, ‖μ̂ − μ‖²",
        "tail_mass": "share of samples beyond Mahalanobis distance 3",
        "test_nll": "test negative log-likelihood (nats per row)",
    },
    median_metrics=("var_trace",),
    truth_from_spec=truth_from_spec,
    batched=batched,
    theory=theory,
)
