"""The torch half of the ``lm`` family's model (:class:`modelcollapse.families.lm.Model`).

The training loop (AdamW, warm-up then cosine decay, seeded epochs of random order),
batched generation of continuations, batched per-token scoring, and the checkpoint
(safetensors weights + JSON description). The family module imports this module
inside its methods, so loading the family does not import torch. The model and its
decoding are :mod:`modelcollapse.neural.transformer`; docs/lm.md describes them.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from modelcollapse import io
from modelcollapse.io import ArtifactError
from modelcollapse.neural.torch_utils import load_numpy_state, state_to_numpy
from modelcollapse.neural.transformer import GPT, generate
from modelcollapse.progress import Progress

if TYPE_CHECKING:
    from modelcollapse.families.lm import Model

M = TypeVar("M", bound="Model")


def lr_scale(step: int, steps: int) -> float:
    """Linear warm-up over the first 10% of steps, then cosine decay from 1 to 0.1."""
    warmup = max(1, steps // 10)
    if step < warmup:
        return (step + 1) / warmup
    return 0.55 + 0.45 * math.cos(math.pi * (step - warmup) / max(1, steps - warmup))


def train(
    module: GPT,
    rows: torch.Tensor,
    steps: int,
    batch: int,
    *,
    lr: float,
    weight_decay: float,
    random_state: int | None,
    device: str,
) -> list[float]:
    """Train ``module`` in place for ``steps`` steps of ``batch`` rows; the loss of each step.

    AdamW (betas 0.9/0.95, decay on matrices), linear warm-up then cosine decay to
    lr/10, gradient clipping at 1; rows drawn in seeded epochs of random order; torch's
    global generator (dropout) seeded from ``random_state``.
    """
    torch.manual_seed(int(random_state or 0))  # dropout
    order = torch.Generator().manual_seed(int(random_state or 0))
    params = [p for p in module.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), foreach=False)
    module.train()
    perm, cursor, losses = torch.randperm(len(rows), generator=order), 0, []
    tokens = batch * (rows.shape[1] - 1)
    progress = Progress("lm train", steps, "step", items_unit="tokens")
    for step in range(steps):
        if cursor + batch > len(rows):
            perm, cursor = torch.randperm(len(rows), generator=order), 0
        idx = rows[perm[cursor : cursor + batch]].to(device)
        cursor += batch
        for group in opt.param_groups:
            group["lr"] = lr * lr_scale(step, steps)
        loss = module.loss(idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0, foreach=False)
        opt.step()
        losses.append(float(loss.detach()))
        progress.update(items=tokens, loss=losses[-1])
    progress.close()
    return losses


def continuations(
    module: GPT,
    matrix: np.ndarray,
    new: int,
    per_batch: int,
    decoding: dict[str, Any],
    generator: torch.Generator,
    device: str,
) -> list[np.ndarray]:
    """``new`` tokens after each row of ``matrix`` (equal-length prompts), ``per_batch``
    rows at a time, decoded as ``decoding`` says (``transformer.generate``'s keywords)."""
    out = []
    starts = range(0, len(matrix), per_batch)
    with Progress("lm generate", len(starts), "batch", items_unit="tokens") as progress:
        for start in starts:
            batch = torch.from_numpy(matrix[start : start + per_batch]).to(device)
            cont = generate(module, batch, new, **decoding, generator=generator)
            out.append(cont.cpu().numpy())
            progress.update(items=cont.numel())
    return out


def token_logprobs(module: GPT, matrix: np.ndarray, batch_size: int, device: str) -> np.ndarray:
    """``(rows, L - 1)`` log-probabilities (float64) of tokens 2..L of each row of ``matrix``."""
    out = []
    for start in range(0, len(matrix), batch_size):
        batch = torch.from_numpy(matrix[start : start + batch_size]).to(device)
        out.append(module.token_logprobs(batch).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def save(model: Model, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """safetensors (weights; the head is tied to the embedding) + JSON (params,
    architecture, tokenizer md5, training summary): the checkpoint describes itself."""
    meta = {
        "family": model.family,
        "class": type(model).__name__,
        "params": model.get_params(),
        "architecture": asdict(model.module_.cfg),
        # set from __init__'s signature in a loop, which mypy cannot follow
        "tokenizer_md5": model.tokenizer_md5,  # type: ignore[attr-defined]
        "training": model.training_,
    }
    if extra:
        meta["extra"] = extra
    io.save_checkpoint(path, state_to_numpy(model.module_, skip=("lm_head.weight",)), meta)


def load(cls: type[M], path: str | Path) -> M:
    """A fitted ``cls`` from the checkpoint :func:`save` wrote."""
    tensors, meta = io.load_checkpoint(path)
    if meta.get("family") != cls.family:
        raise ArtifactError(
            f"checkpoint {path} is of family {meta.get('family')!r}, expected {cls.family!r}"
        )
    model = cls(**meta.get("params", {}))
    module = GPT(model.config())
    try:
        load_numpy_state(module, tensors, tied=("lm_head.weight",))
    except (ValueError, RuntimeError) as exc:
        raise ArtifactError(f"checkpoint {path}: {exc}") from exc
    module.eval()
    model.module_, model.training_ = module, meta.get("training", {})
    return model
