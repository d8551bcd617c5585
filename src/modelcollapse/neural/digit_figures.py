"""The VAE's snapshot figures (``Family.snapshots`` of the ``vae`` family).

Matplotlib and torch are imported when a figure is drawn, never when the family is
loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelcollapse import io, tables
from modelcollapse.neural.digits import COLUMN, REF_MU, ImageTruth, pixels

if TYPE_CHECKING:
    from modelcollapse.settings import RunSettings


def _net() -> Any:
    from modelcollapse.neural import vae_model

    return vae_model


def snapshot_figures(
    run: str,
    settings: RunSettings,
    truth: ImageTruth,
    root: str | Path = ".",
    *,
    title: Callable[[str], str],
) -> dict[str, Any]:
    """``snapshots_samples.png``: human test digits and samples of each plotted
    generation; ``snapshots_latents.png``: the generation-0 encoder's latent means of
    those samples (the distribution narrows)."""
    import matplotlib.pyplot as plt

    from modelcollapse.paths import gen_file, human_file

    gens = sorted(set(settings.plot_generations))
    if not gens:
        return {}
    shape, cols, rows = tuple(truth.image_shape), 16, 2
    test = io.read_table(human_file(settings.human, "test.parquet", root), columns=[COLUMN])
    panels: list[tuple[str, np.ndarray, np.ndarray | None]] = [
        ("human test digits", pixels(test)[: cols * rows], None)
    ]
    for g in gens:
        frame = io.read_table(gen_file(settings.chain(run, g), g, "samples.parquet", root))
        mu = (
            np.stack(tables.rows(frame, REF_MU, np.float32))
            if REF_MU in frame.column_names
            else None
        )
        panels.append((f"generation {g}", pixels(frame.slice(0, cols * rows)), mu))
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(8.0, 1.15 * len(panels) + 0.8), layout="constrained", squeeze=False
    )
    for ax, (label, images, mu) in zip(axes[:, 0], panels, strict=True):
        ax.imshow(_net().mosaic(images, shape, cols), cmap="gray_r", vmin=0.0, vmax=1.0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        std = f"\nlatent std {_net().latent_spread(mu)['latent_std']:.3f}" if mu is not None else ""
        ax.set_ylabel(label + std, rotation=0, ha="right", va="center")
    fig.suptitle(title("samples (decoder means of z ~ N(0, I)) by generation"))
    figures = {"snapshots_samples.png": fig}
    latents = [(label, mu) for label, _, mu in panels if mu is not None]
    if latents:
        lfig, ax = plt.subplots(figsize=(7.0, 4.4), layout="constrained")
        values = [np.asarray(mu, dtype=np.float64).ravel() for _, mu in latents]
        lim = 1.1 * max(float(np.quantile(np.abs(v), 0.999)) for v in values)
        edges = np.linspace(-lim, lim, 81)
        cmap = plt.get_cmap("viridis")
        for i, ((label, mu), v) in enumerate(zip(latents, values, strict=True)):
            std = _net().latent_spread(mu)["latent_std"]
            ax.hist(
                v,
                bins=edges.tolist(),
                density=True,
                histtype="step",
                lw=1.4,
                color=cmap(i / max(len(latents) - 1, 1)),
                label=f"{label} (std {std:.3f})",
            )
        ax.set_xlabel("generation-0 encoder's posterior mean (all latent dimensions)")
        ax.set_ylabel("density")
        ax.legend(loc="upper right")
        lfig.suptitle(title("latent means of each generation's samples (the tails vanish)"))
        figures["snapshots_latents.png"] = lfig
    return figures
