"""Torch plumbing of the ``vae`` family's model (:class:`modelcollapse.families.vae.Model`).

Pixel arrays as tensors, a seeded initialisation, and the checkpoint: ``save`` writes
the network's state dict as safetensors and, beside it, a JSON file with the model's
parameters, its architecture (layers and parameter count) and its training (loss,
optimizer, loss history); ``load`` rebuilds the model from both, never from a pickle.
The network, its training loop and its metrics are :mod:`modelcollapse.neural.vae_model`.
The family module imports both inside its functions, so loading the family does not
import torch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from modelcollapse import io

if TYPE_CHECKING:
    from modelcollapse.families.vae import Model

M = TypeVar("M", bound="Model")


def to_tensor(values: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).reshape(-1, *shape)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Torch's global generator seeded for a block (weight initialisation), then restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def save(model: Model, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """``path`` (safetensors: the state dict) and its ``.json`` (parameters,
    architecture, training)."""
    tensors = {k: v.detach().numpy() for k, v in model.net_.state_dict().items()}
    layers = [f"{k}: {m}" for k, m in model.net_.named_modules() if k and not list(m.children())]
    meta: dict[str, Any] = {
        "family": model.family,
        "class": type(model).__name__,
        "params": model.get_params(),
        "architecture": {
            "type": "ConvVAE",
            **model.architecture(),
            "parameters": int(sum(v.size for v in tensors.values())),
            "layers": layers,
        },
        "training": {
            "loss": "BCE summed over pixels + KL(q(z|x) || N(0, I)), mean per image",
            "optimizer": "Adam",
            "train_rows": int(model.train_rows_),
            "loss_history": [float(v) for v in model.loss_history_],
        },
    }
    if extra:
        meta["extra"] = extra
    io.save_checkpoint(path, tensors, meta)


def load(cls: type[M], path: str | Path) -> M:
    """A fitted ``cls`` from the checkpoint :func:`save` wrote."""
    tensors, meta = io.load_checkpoint(path)
    if meta.get("family") != cls.family:
        raise io.ArtifactError(
            f"checkpoint {path} is of family {meta.get('family')!r}, expected {cls.family!r}"
        )
    model = cls(**meta.get("params", {}))
    net = model._new_net(0)
    try:
        net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()})
    except RuntimeError as exc:
        msg = f"checkpoint {path} does not fit its architecture: {exc}"
        raise io.ArtifactError(msg) from exc
    net.eval()
    training = meta.get("training", {})
    model.net_ = net
    model.loss_history_ = list(training.get("loss_history", []))
    model.train_rows_ = int(training.get("train_rows", 0))
    return model
