"""Torch plumbing shared by the neural families: determinism, threads, checkpoints.

Checkpoints go through :func:`modelcollapse.io.save_checkpoint` (safetensors +
JSON, atomic, keys sorted), so a state dict becomes numpy arrays first: no
pickle anywhere, and the same weights always give the same bytes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np
import torch


@contextlib.contextmanager
def torch_session(threads: int, device: str = "cpu") -> Iterator[None]:
    """Deterministic kernels on a fixed number of CPU threads (restored afterwards).

    The thread count is fixed by the run's options, not by what the scheduler grants:
    float reductions split over a different number of threads give different bits.
    On a GPU, kernels without a deterministic version warn instead of failing.
    """
    before_threads = torch.get_num_threads()
    before_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(int(threads))
    if device != "cpu":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    torch.use_deterministic_algorithms(True, warn_only=device != "cpu")
    try:
        yield
    finally:
        torch.set_num_threads(before_threads)
        torch.use_deterministic_algorithms(before_det)


def torch_seed(rng: np.random.Generator) -> int:
    """A 63-bit seed for a torch generator, drawn from a numpy generator."""
    return int(rng.integers(0, 2**63 - 1))


def state_to_numpy(module: torch.nn.Module, skip: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The module's parameters and persistent buffers as numpy arrays (tied copies skipped)."""
    return {
        name: tensor.detach().cpu().contiguous().numpy().copy()
        for name, tensor in module.state_dict().items()
        if name not in skip
    }


def load_numpy_state(
    module: torch.nn.Module, arrays: dict[str, np.ndarray], tied: tuple[str, ...] = ()
) -> None:
    """Load arrays into ``module``; only the ``tied`` names may be absent."""
    state = {name: torch.from_numpy(np.array(value)) for name, value in arrays.items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [name for name in missing if name not in tied]
    if missing or unexpected:
        raise ValueError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
