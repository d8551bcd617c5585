"""The language model's snapshot figure (``Family.snapshots`` of the ``lm`` family).

Matplotlib is imported when a figure is drawn, never when the family is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelcollapse import io, tables
from modelcollapse.neural.text import Corpus

if TYPE_CHECKING:
    from modelcollapse.settings import RunSettings


def snapshot_figures(
    run: str, settings: RunSettings, truth: Corpus, root: str | Path = ".", *, title
) -> dict[str, Any]:
    """Histograms (log x axis) of each plotted generation's samples' perplexity under
    the generation-0 model: the paper's figure (the mass shifts to low perplexity while
    a long tail grows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from modelcollapse.paths import gen_file

    gens = sorted(set(settings.plot_generations))
    if not gens:
        return {}
    values = {
        g: tables.column(
            io.read_table(
                gen_file(settings.chain(run, g), g, "samples.parquet", root), ["ref_perplexity"]
            ),
            "ref_perplexity",
            np.float64,
        )
        for g in gens
    }
    finite = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in values.values()])
    edges = np.geomspace(finite.min() * 0.9, finite.max() * 1.1, 50)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(gens)))
    for color, g in zip(colors, gens, strict=True):
        ax.hist(
            values[g],
            bins=edges.tolist(),
            weights=np.full(len(values[g]), 1.0 / max(1, len(values[g]))),
            histtype="step",
            lw=1.5,
            color=color,
            label=f"generation {g}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("perplexity of generated blocks under the generation-0 model")
    ax.set_ylabel("share of blocks")
    ax.legend()
    fig.suptitle(title("perplexity of each generation's samples (scored by generation 0)"))
    return {"snapshots_ref_perplexity.png": fig}
