"""A convolutional VAE as in Shumailov et al.'s MNIST notebook, written compactly.

Encoder: two stride-2 convolutions (28 -> 14 -> 7), a hidden dense layer, and
the mean and log-variance of a diagonal Gaussian posterior over ``latent_dim``
(20) dimensions. Decoder: the mirror image, ending in Bernoulli logits per
pixel. Loss: binary cross-entropy (summed over pixels) plus the KL divergence
to N(0, I), per image: the negative ELBO in nats.

Also the plumbing every entry point shares: deterministic CPU settings
(:func:`torch_settings`), batched encode/decode/ELBO, a plain training loop and
the k-nearest-neighbour precision and recall of Kynkäänniemi et al. (2019).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modelcollapse.progress import Progress

log = logging.getLogger("modelcollapse")

# Size presets: (conv channels, hidden units of the dense layer).
SIZES: dict[str, dict[str, object]] = {
    "tiny": {"channels": [8, 16], "hidden": 64},
    "small": {"channels": [16, 32], "hidden": 128},
    "default": {"channels": [32, 64], "hidden": 256},
}
EVAL_BATCH = 500


@contextlib.contextmanager
def torch_settings(threads: int) -> Iterator[None]:
    """Deterministic CPU arithmetic with a fixed thread count; restores the old state.

    Float reductions (convolutions, matrix products) split work by thread, so the
    thread count is part of what makes results byte-identical.
    """
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(int(threads))
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


class ConvVAE(nn.Module):
    """Conv encoder / decoder VAE for ``(channels, height, width)`` images (H, W % 4 == 0)."""

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 20,
        channels: Sequence[int] = (32, 64),
        hidden: int = 256,
    ) -> None:
        super().__init__()
        c, h, w = (int(v) for v in image_shape)
        if h % 4 or w % 4:
            raise ValueError(f"image height and width must be multiples of 4, got {h}x{w}")
        c1, c2 = (int(v) for v in channels)
        self.image_shape = (c, h, w)
        self.latent_dim = int(latent_dim)
        flat = c2 * (h // 4) * (w // 4)
        self.encoder = nn.Sequential(
            nn.Conv2d(c, c1, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(flat, hidden),
            nn.ReLU(),
        )
        self.fc_mu = nn.Linear(hidden, latent_dim)
        self.fc_logvar = nn.Linear(hidden, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, flat),
            nn.ReLU(),
            nn.Unflatten(1, (c2, h // 4, w // 4)),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(c1, c, 4, stride=2, padding=1),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance, each ``(n, latent_dim)``."""
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(
        self, x: torch.Tensor, eps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits of the reconstruction with ``z = mu + exp(logvar / 2) * eps``."""
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decode_logits(z), mu, logvar


def negative_elbo(
    logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    """Per image: BCE summed over pixels + KL(q(z|x) || N(0, I)), in nats, shape ``(n,)``."""
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
    return bce + kl


def train_loop(
    net: ConvVAE,
    x: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    rng: np.random.Generator,
    noise: torch.Generator,
    progress: bool = True,
    desc: str = "vae",
) -> list[float]:
    """Adam on the mean negative ELBO per image; returns the mean loss of each epoch.

    ``rng`` orders the minibatches, ``noise`` draws the reparameterisation noise.
    """
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n = x.shape[0]
    batches = math.ceil(n / batch_size)
    history: list[float] = []
    net.train()
    bar = Progress(desc, epochs * batches, "batch", items_unit="images", enabled=progress)
    with bar:
        for epoch in range(epochs):
            order = torch.from_numpy(rng.permutation(n))
            total = 0.0
            for b in range(batches):
                xb = x[order[b * batch_size : (b + 1) * batch_size]]
                eps = torch.randn((xb.shape[0], net.latent_dim), generator=noise)
                logits, mu, logvar = net(xb, eps)
                loss = negative_elbo(logits, xb, mu, logvar).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * xb.shape[0]
                bar.update(items=xb.shape[0])
            history.append(total / n)
            bar.update(0, epoch=epoch + 1, loss=history[-1])
            log.debug("%s: epoch %d/%d, loss %.4f", desc, epoch + 1, epochs, history[-1])
    net.eval()
    return history


def _batched(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int = EVAL_BATCH
) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(x[i : i + batch]) for i in range(0, x.shape[0], batch)])


def encode_means(net: ConvVAE, x: torch.Tensor) -> np.ndarray:
    """Posterior means ``(n, latent_dim)`` as float32."""
    net.eval()
    return _batched(lambda xb: net.encode(xb)[0], x).numpy()


def decode_means(net: ConvVAE, z: torch.Tensor) -> np.ndarray:
    """Decoder means (pixel probabilities) ``(n, prod(image_shape))`` as float32."""
    net.eval()
    return _batched(lambda zb: torch.sigmoid(net.decode_logits(zb)).flatten(1), z).numpy()


def elbo(net: ConvVAE, x: torch.Tensor, *, samples: int = 1, seed: int = 0) -> np.ndarray:
    """Per-image ELBO (a lower bound on log p(x), nats), averaged over ``samples``
    draws of z from a generator seeded with ``seed``: a function of x and the weights."""
    net.eval()
    noise = torch.Generator().manual_seed(seed)

    def one(xb: torch.Tensor) -> torch.Tensor:
        mu, logvar = net.encode(xb)
        acc = torch.zeros(xb.shape[0], dtype=torch.float64)
        for _ in range(samples):
            eps = torch.randn(mu.shape, generator=noise)
            z = mu + torch.exp(0.5 * logvar) * eps
            acc += negative_elbo(net.decode_logits(z), xb, mu, logvar).double()
        return -acc / samples

    return _batched(one, x).numpy()


# --- k-NN precision and recall (Kynkäänniemi et al. 2019) ------------------------


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``(len(a), len(b))`` in float64."""
    a, b = a.double(), b.double()
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return d.clamp_min_(0.0)


def knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Squared distance of each point to its k-th nearest neighbour within ``x`` (self excluded)."""
    d = _sq_dists(x, x)
    return d.kthvalue(k + 1, dim=1).values  # the smallest is the point itself


def _coverage(points: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor) -> float:
    """Share of ``points`` inside at least one k-NN ball of the ``manifold`` points."""
    inside = torch.zeros(points.shape[0], dtype=torch.bool)
    for i in range(0, points.shape[0], 1000):
        d = _sq_dists(points[i : i + 1000], manifold)
        inside[i : i + 1000] = (d <= radii[None, :]).any(1)
    return float(inside.double().mean())


def knn_precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019).

    Precision: the share of ``fake`` points inside the real manifold (the union of
    balls around each real point reaching its k-th nearest real neighbour).
    Recall: the share of ``real`` points inside the fake manifold. Both in [0, 1].
    """
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"need more than k={k} points in each set")
    r = torch.from_numpy(np.ascontiguousarray(real, dtype=np.float64))
    f = torch.from_numpy(np.ascontiguousarray(fake, dtype=np.float64))
    precision = _coverage(f, r, knn_radii(r, k))
    recall = _coverage(r, f, knn_radii(f, k))
    return precision, recall


def knn_classify(
    points: np.ndarray, reference: np.ndarray, labels: np.ndarray, k: int = 5
) -> np.ndarray:
    """Majority label of the k nearest ``reference`` points (ties: the smaller label)."""
    ref = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float64))
    lab = torch.from_numpy(np.array(labels, dtype=np.int64))
    classes = int(lab.max()) + 1
    out = []
    for i in range(0, len(points), 1000):
        p = torch.from_numpy(np.ascontiguousarray(points[i : i + 1000], dtype=np.float64))
        idx = _sq_dists(p, ref).topk(k, dim=1, largest=False).indices
        votes = F.one_hot(lab[idx], classes).sum(1)
        out.append(votes.argmax(1))
    return torch.cat(out).numpy()


# --- summaries of samples -------------------------------------------------------------


def latent_spread(mu: np.ndarray) -> dict[str, float]:
    """Spread of latent means ``(n, latent_dim)``.

    ``latent_std``: the std of all ``n * latent_dim`` values pooled (the spread of
    a histogram of every latent value: Shumailov et al.'s figure).
    ``latent_dim_std``: the mean over latent dimensions of each dimension's std
    across the samples (the spread around the samples' own centre, without the
    offsets between dimensions' centres that the pooled std also counts).
    """
    mu = np.asarray(mu, dtype=np.float64)
    return {"latent_std": float(mu.std()), "latent_dim_std": float(mu.std(axis=0).mean())}


def class_shares(classes: np.ndarray, num_classes: int) -> dict[str, float]:
    """Entropy (bits) of the class histogram and the largest class's share."""
    p = np.bincount(classes, minlength=num_classes) / max(len(classes), 1)
    nz = p[p > 0]
    return {"class_entropy": float(-(nz * np.log2(nz)).sum()), "top_class_share": float(p.max())}


def mosaic(images: np.ndarray, shape: tuple[int, ...], cols: int) -> np.ndarray:
    """``(n, d)`` single-channel images tiled ``cols`` a row, one pixel of padding."""
    _, h, w = shape
    rows = -(-len(images) // cols)
    out = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1), dtype=np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = (
            img.reshape(h, w)
        )
    return out
