"""Variational autoencoder on real images: Shumailov et al.'s MNIST experiment.

Generation 0 trains a convolutional VAE (:mod:`modelcollapse.neural.vae_model`)
on human digits; every later generation trains a fresh VAE, from the same
initialisation, on the decoder means of z ~ N(0, I) of the one before (regimes
apply). The digits blur and merge into fewer modes.

Metrics (each generation; ``reference`` is the generation-0 model):

``latent_std``
    The standard deviation of the generation-0 encoder's posterior means of this
    generation's samples, all ``n * latent_dim`` values pooled (``np.std`` of the
    ``(n, 20)`` matrix; the spread of the paper's latent histogram). Shumailov et
    al. report about 0.67 falling to 0.43 over five generations; the default run
    here measures 0.68 falling to 0.45. ``latent_dim_std``: the mean over latent
    dimensions of each dimension's std (the spread around the samples' own centre,
    without the offsets between dimensions' centres; the steadier of the two when
    a small model collapses hard).
``test_neg_elbo``
    Negative ELBO (nats per image, an upper bound on -log p) of the human test
    digits under this generation's model. ``sample_ref_neg_elbo``: of this
    generation's samples under the generation-0 model.
``precision``, ``recall``
    Improved precision and recall (Kynkäänniemi et al. 2019, k = ``knn_k``, 3) of
    samples against the human test digits, in the generation-0 encoder's latent
    space (posterior means): a learnt feature space. In pixel space blurry decoder
    means lie inside the real manifold whatever they show (precision 1.0 in every
    generation when measured there), so pixels would not tell. Equal numbers of
    samples and test digits (the first ``min(n_samples, n_test)`` rows of each).
``class_entropy``, ``top_class_share``
    Classes of the samples by 5-nearest-neighbour vote among the labelled human
    pool digits in the generation-0 encoder's latent space: the entropy of the
    class histogram (bits, log2 10 = 3.32 when balanced) and the largest class's
    share. The digits forgotten show here.
``sample_pixel_std``
    The mean over pixels of the per-pixel std of the samples (pixel diversity).
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pyarrow as pa

from modelcollapse import tables
from modelcollapse.families.base import Estimator, Family, builtin_schema
from modelcollapse.neural import digit_figures
from modelcollapse.neural.digits import (
    IMAGE_SHAPE,
    REF_ELBO,
    REF_MU,
    ImageTruth,
    image_frame,
    load_human,
    load_truth,
    pixels,
)

if TYPE_CHECKING:
    from modelcollapse.neural.vae_model import ConvVAE


def _net() -> ModuleType:
    """The torch half of the family (``modelcollapse.neural.vae_model``), imported when
    a model is built, trained or scored: reading this module's flags (the Snakefile
    does, for every run) costs no torch import."""
    from modelcollapse.neural import vae_model

    return vae_model


def _tools() -> ModuleType:
    """Its torch plumbing (:mod:`modelcollapse.neural.vae_torch`): tensors from pixels,
    the seeded initialisation, the checkpoint."""
    from modelcollapse.neural import vae_torch

    return vae_torch


def _torch() -> ModuleType:
    import torch

    return torch


NAME = "vae"

log = logging.getLogger("modelcollapse")

CLASSIFIER_K = 5
_MODEL_OPTIONS: tuple[str, ...] = ("size", "latent_dim", "channels", "hidden", "epochs")
_MODEL_OPTIONS += ("batch_size", "lr", "elbo_samples", "knn_k", "threads")
__all__ = [
    "NAME",
    "Model",
    "ImageTruth",
    "annotate_samples",
    "build_model",
    "evaluate",
    "load_human",
    "load_truth",
]


# --- the model ----------------------------------------------------------------------


class Model(Estimator):
    """A convolutional VAE with the scikit-learn contract (see the module docstring)."""

    family = NAME
    _param_names = (
        "image_shape",
        "size",
        "latent_dim",
        "channels",
        "hidden",
        "epochs",
        "batch_size",
        "lr",
        "elbo_samples",
        "knn_k",
        "threads",
        "random_state",
        "init_seed",
    )  # ``progress`` (log lines) is display only: not a parameter, not in checkpoints

    def __init__(
        self,
        image_shape: tuple[int, ...] | list[int] = IMAGE_SHAPE,
        size: str = "default",
        latent_dim: int = 20,
        channels: list[int] | None = None,
        hidden: int | None = None,
        epochs: int = 20,
        batch_size: int = 64,
        lr: float = 1e-3,
        elbo_samples: int = 1,
        knn_k: int = 3,
        threads: int = 1,
        random_state: int = 0,
        init_seed: int | None = None,
        progress: bool = True,
    ) -> None:
        self.image_shape = image_shape
        self.size = size
        self.latent_dim = latent_dim
        self.channels = channels
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.elbo_samples = elbo_samples
        self.knn_k = knn_k
        self.threads = threads
        self.random_state = random_state
        self.init_seed = init_seed
        self.progress = progress

    def get_params(self) -> dict[str, Any]:  # JSON-ready: tuples as lists
        params = super().get_params()
        params["image_shape"] = [int(v) for v in params["image_shape"]]
        return params

    def architecture(self) -> dict[str, Any]:
        if self.size not in _net().SIZES:
            raise ValueError(f"unknown size {self.size!r}; known: {sorted(_net().SIZES)}")
        preset = _net().SIZES[self.size]
        return {
            "image_shape": [int(v) for v in self.image_shape],
            "latent_dim": int(self.latent_dim),
            "channels": [int(c) for c in (self.channels or preset["channels"])],
            "hidden": int(self.hidden or preset["hidden"]),
        }

    def _new_net(self, seed: int) -> ConvVAE:
        with _tools().seeded(seed):
            return _net().ConvVAE(**self.architecture())

    def is_fitted(self) -> bool:
        return hasattr(self, "net_")

    def _shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.image_shape)

    def fit(self, data: pa.Table) -> Self:
        """Train a fresh VAE, initialised from ``init_seed`` (else ``random_state``),
        on the ``pixels`` column; ``random_state`` orders minibatches and draws noise."""
        x = _tools().to_tensor(pixels(data), self._shape())
        order_seq, noise_seq = np.random.SeedSequence(self.random_state).spawn(2)
        noise_seed = int(noise_seq.generate_state(1, np.uint64)[0])
        init = self.random_state if self.init_seed is None else self.init_seed
        with _net().torch_settings(self.threads):
            net = self._new_net(int(init))
            history = _net().train_loop(
                net,
                x,
                epochs=self.epochs,
                batch_size=self.batch_size,
                lr=self.lr,
                rng=np.random.default_rng(order_seq),
                noise=_torch().Generator().manual_seed(noise_seed),
                progress=self.progress,
                desc=f"vae fit ({len(x)} images)",
            )
        log.info(
            "vae: %d epochs on %d images, loss %.2f -> %.2f",
            self.epochs,
            len(x),
            history[0],
            history[-1],
        )
        self.net_, self.loss_history_, self.train_rows_ = net, history, len(x)
        return self

    def sample(self, n: int, rng: np.random.Generator) -> pa.Table:
        """Decoder means of ``z ~ N(0, I)`` (z drawn from ``rng``): ``n`` rows of pixels."""
        self._check_fitted()
        z = rng.standard_normal((n, int(self.latent_dim)), dtype=np.float32)
        with _net().torch_settings(self.threads):
            return image_frame(_net().decode_means(self.net_, _torch().from_numpy(z)))

    def score(self, data: pa.Table) -> np.ndarray:
        """Per-row ELBO (nats; a lower bound on log p(x)), deterministic in data and weights."""
        self._check_fitted()
        x = _tools().to_tensor(pixels(data), self._shape())
        with _net().torch_settings(self.threads):
            return _net().elbo(self.net_, x, samples=self.elbo_samples, seed=0)

    def encode(self, data: pa.Table | np.ndarray) -> np.ndarray:
        """Posterior means ``(n, latent_dim)`` of images (a frame or a pixel array)."""
        self._check_fitted()
        values = data if isinstance(data, np.ndarray) else pixels(data)
        with _net().torch_settings(self.threads):
            return _net().encode_means(self.net_, _tools().to_tensor(values, self._shape()))

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """``path`` (safetensors: the state dict) and its ``.json`` (parameters,
        architecture, training); never pickle."""
        self._check_fitted()
        _tools().save(self, path, extra)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        return _tools().load(cls, path)


def build_model(
    options: dict[str, Any], truth: ImageTruth, random_state: int, init_seed: int | None = None
) -> Model:
    """An unfitted VAE for the run's options; ``init_seed`` fixes the initialisation."""
    params = {k: options[k] for k in _MODEL_OPTIONS if k in options}
    return Model(
        image_shape=tuple(truth.image_shape),
        random_state=int(random_state),
        init_seed=init_seed,
        **params,
    )


# --- per-row annotations and metrics ------------------------------------------------


def annotate_samples(samples: pa.Table, reference: Model) -> pa.Table:
    """Add the generation-0 model's view of each sample: ``ref_mu`` (its encoder's
    posterior mean, a list of ``latent_dim`` floats) and ``ref_elbo`` (its ELBO, nats)."""
    mu = reference.encode(samples)
    return tables.with_columns(
        samples,
        **{REF_MU: tables.list_array(mu, np.float32), REF_ELBO: reference.score(samples)},
    )


def evaluate(
    model: Model,
    truth: ImageTruth,
    test: pa.Table,
    samples: pa.Table,
    reference: Model | None = None,
) -> dict[str, float]:
    """The per-generation metrics of the module docstring."""
    ref = model if reference is None else reference
    xs, xt = pixels(samples), pixels(test)
    if REF_MU in samples.column_names and reference is not None:
        mu_s = np.stack(tables.rows(samples, REF_MU, np.float32))
    else:
        mu_s = ref.encode(xs)
    mu_t = ref.encode(xt)
    out = _net().latent_spread(mu_s)
    out["test_neg_elbo"] = float(-model.score(test).mean())
    if REF_ELBO in samples.column_names and reference is not None:
        out["sample_ref_neg_elbo"] = float(-tables.column(samples, REF_ELBO, np.float64).mean())
    else:
        out["sample_ref_neg_elbo"] = float(-ref.score(samples).mean())
    m = min(len(xs), len(xt))
    k = int(model.knn_k)
    with _net().torch_settings(model.threads):
        out["precision"], out["recall"] = _net().knn_precision_recall(mu_t[:m], mu_s[:m], k)
        labels = truth.pool_labels
        classes = _net().knn_classify(mu_s, ref.encode(truth.pool_pixels), labels, CLASSIFIER_K)
    out.update(_net().class_shares(classes, int(labels.max()) + 1))
    out["sample_pixel_std"] = float(xs.std(axis=0, dtype=np.float64).mean())
    return out


FAMILY = Family(
    name=NAME,
    model=Model,
    schema=builtin_schema(NAME),
    build_model=build_model,
    evaluate=evaluate,
    key_metrics=("latent_std", "test_neg_elbo", "recall"),
    metric_labels={
        "latent_std": "std of samples' latent means (generation-0 encoder)",
        "latent_dim_std": "mean per-dimension latent std (generation-0 encoder)",
        "test_neg_elbo": "test negative ELBO (nats per image)",
        "sample_ref_neg_elbo": "samples' negative ELBO under generation 0 (nats)",
        "precision": "precision (k-NN, latent space)",
        "recall": "recall (k-NN, latent space)",
        "class_entropy": "entropy of sample classes (bits; 3.32 balanced)",
        "top_class_share": "share of the most frequent class",
        "sample_pixel_std": "mean per-pixel std of samples",
    },
    load_human=load_human,
    load_truth=load_truth,
    same_init=True,
    annotate_samples=annotate_samples,
    snapshots=digit_figures.snapshot_figures,
)
