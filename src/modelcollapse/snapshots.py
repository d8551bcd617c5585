"""Snapshots of a run's model at its ``plot_generations`` (part of results/<run>/figures/).

1-D data: histograms of the generation's samples with the true and fitted
densities (the tails vanish). 2-D data: the fitted density's filled contours,
the true density's contours and the samples (Shumailov et al.'s GMM figure).
Categorical data: the model's probabilities by the symbols' true rank, log scale
(symbols that vanish leave gaps). A family picks its kind (``Family.snapshots``):
regressions have none; the neural families draw their own.

Every density comes from ``Model.score`` (per-row log-likelihood), so a family
needs nothing beyond its contract to be drawn.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from modelcollapse import io, tables  # noqa: E402
from modelcollapse.paths import gen_file, human_file  # noqa: E402

if TYPE_CHECKING:
    from modelcollapse.families.base import Family
    from modelcollapse.settings import RunSettings

log = logging.getLogger("modelcollapse")

TRUTH_COLOR, MODEL_COLOR, SAMPLE_COLOR = "black", "tab:orange", "tab:blue"
Title = Callable[[str], str]


def _features(table: pa.Table) -> list[str]:
    names = [str(c) for c in table.column_names if re.fullmatch(r"x\d+", str(c))]
    return sorted(names, key=lambda c: int(c[1:]))


def _density(model: Any, points: np.ndarray, columns: list[str]) -> np.ndarray:
    """``exp(model.score(points))``; 0 where the model gives no mass."""
    logp = np.asarray(model.score(tables.from_matrix(points, columns)), dtype=float)
    return np.exp(np.where(np.isnan(logp), -np.inf, logp))


def _span(arrays: list[np.ndarray], pad: float = 0.05) -> tuple[float, float]:
    """A common axis range: the 0.1%..99.9% quantiles of all values, padded."""
    values = np.concatenate([a[np.isfinite(a)] for a in arrays])
    lo, hi = np.quantile(values, [0.001, 0.999])
    width = max(float(hi - lo), 1e-6)
    return float(lo - pad * width), float(hi + pad * width)


def _panels(count: int, width: float, height: float) -> tuple[Figure, list[Axes]]:
    """A grid of ``count`` panels, at most five a row, rows as even as they can be
    (5 panels: one row of 5; 7: rows of 4 and 3; 9: rows of 5 and 4)."""
    rows = math.ceil(count / 5)
    cols = math.ceil(count / rows)
    size = (width * cols, height * rows + 0.7)
    fig, axes = plt.subplots(rows, cols, figsize=size, layout="constrained", squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


Snapshot = tuple[int, Any, pa.Table]  # generation, fitted model, its samples


def histogram_snapshots(snaps: list[Snapshot], truth: Any, test: pa.Table, title: Title) -> Figure:
    """1-D: histograms of each generation's samples with the true and fitted densities."""
    lo, hi = _span(
        [tables.column(test, "x0", float)] + [tables.column(s, "x0", float) for _, _, s in snaps]
    )
    edges = np.linspace(lo, hi, 61)
    xs = np.linspace(lo, hi, 400)
    true_pdf = _density(truth, xs[:, None], ["x0"])
    fig, axes = _panels(len(snaps), 3.2, 2.8)
    for ax, (g, model, samples) in zip(axes, snaps, strict=True):
        x = tables.column(samples, "x0", float)
        ax.hist(
            x, bins=edges.tolist(), density=True, color=SAMPLE_COLOR, alpha=0.55, label="samples"
        )
        ax.plot(xs, true_pdf, color=TRUTH_COLOR, lw=1.3, label="true density")
        fitted = _density(model, xs[:, None], ["x0"])
        ax.plot(xs, fitted, color=MODEL_COLOR, ls="--", lw=1.2, label="fitted density")
        ax.set_title(f"generation {g}: sd of samples {np.std(x):.3g}")
        ax.set_xlim(lo, hi)
        ax.set_xlabel("x0")
    axes[0].set_ylabel("density")
    axes[0].legend(loc="upper left")
    fig.suptitle(title("samples of each generation (the tails vanish)"))
    return fig


def density_snapshots(snaps: list[Snapshot], truth: Any, test: pa.Table, title: Title) -> Figure:
    """2-D: the fitted density (filled contours), the truth's contours (dashed), samples."""
    cols = ["x0", "x1"]
    spans = [
        _span([tables.column(test, c, float)] + [tables.column(s, c, float) for _, _, s in snaps])
        for c in cols
    ]
    gx, gy = (np.linspace(lo, hi, 120) for lo, hi in spans)
    mesh = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
    true_pdf = _density(truth, mesh, cols).reshape(len(gy), len(gx))
    true_levels = true_pdf.max() * np.array([0.02, 0.1, 0.3, 0.6, 0.9])
    fig, axes = _panels(len(snaps), 3.4, 3.2)
    for ax, (g, model, samples) in zip(axes, snaps, strict=True):
        pdf = _density(model, mesh, cols).reshape(len(gy), len(gx))
        if np.isfinite(pdf).all() and pdf.max() > 0:
            levels = pdf.max() * np.linspace(0.02, 1.0, 9)
            ax.contourf(gx, gy, pdf, levels=levels, cmap="Blues", alpha=0.85)
        ax.contour(
            gx,
            gy,
            true_pdf,
            levels=true_levels,
            colors=TRUTH_COLOR,
            linestyles="dashed",
            linewidths=0.7,
        )
        shown = tables.matrix(samples, cols)[:400]
        ax.scatter(shown[:, 0], shown[:, 1], s=2, color=MODEL_COLOR, alpha=0.6, lw=0)
        ax.set_xlim(*spans[0])
        ax.set_ylim(*spans[1])
        ax.set_title(f"generation {g}")
        ax.set_xlabel("x0")
    axes[0].set_ylabel("x1")
    fig.suptitle(title("fitted density (filled), true density (dashed), samples (dots)"))
    return fig


def num_symbols(truth: Any, test: pa.Table) -> int:
    """The alphabet's size: the truth's probability vector, else the test symbols."""
    if hasattr(truth, "probs_"):
        return int(np.asarray(truth.probs_).shape[-1])
    if getattr(truth, "num_symbols", None):
        return int(truth.num_symbols)
    return int(tables.column(test, "symbol").max()) + 1


def symbol_probabilities(model: Any, size: int) -> np.ndarray:
    """The probabilities a categorical model gives symbols ``0..size-1``."""
    return _density(model, np.arange(size, dtype=np.int64)[:, None], ["symbol"])


def probability_snapshots(
    snaps: list[Snapshot], truth: Any, test: pa.Table, title: Title
) -> Figure:
    """Categorical: each generation's probabilities, symbols ranked by the truth, log y."""
    size = num_symbols(truth, test)
    true_p = symbol_probabilities(truth, size)
    order = np.argsort(-true_p, kind="stable")
    ranks = np.arange(1, size + 1)
    probs = [symbol_probabilities(model, size)[order] for _, model, _ in snaps]
    positive = np.concatenate([p[p > 0] for p in [true_p, *probs]])
    lo, hi = positive.min() / 3, min(1.5, positive.max() * 3)
    fig, axes = _panels(len(snaps), 3.6, 2.8)
    for ax, (g, _, _), p in zip(axes, snaps, probs, strict=True):
        ax.bar(
            ranks,
            np.where(p > 0, p, np.nan),
            width=1.0,
            color=SAMPLE_COLOR,
            alpha=0.7,
            label="model",
        )
        ax.step(ranks, true_p[order], where="mid", color=TRUTH_COLOR, lw=1.0, label="truth")
        ax.set_yscale("log")
        ax.set_ylim(lo, hi)
        ax.set_title(f"generation {g}: support {int((p > 0).sum())}/{size}")
        ax.set_xlabel("symbol (rank under the truth)")
    axes[0].set_ylabel("probability")
    axes[0].legend(loc="upper right")
    fig.suptitle(title("model probabilities by true rank (vanished symbols leave gaps)"))
    return fig


def snapshot_figures(
    run: str,
    settings: RunSettings,
    fam: Family,
    truth: Any,
    root: str | Path = ".",
    *,
    title: Title,
) -> dict[str, Figure]:
    """``{file name: figure}`` of the run's snapshots (``Family.snapshots``); {} for none."""
    if fam.snapshots is None or not settings.plot_generations:
        return {}
    if callable(fam.snapshots):  # the family draws its own
        return fam.snapshots(run, settings, truth, root, title=title)
    gens = sorted(set(settings.plot_generations))
    test = io.read_table(human_file(settings.human, "test.parquet", root))
    features = _features(test)
    if fam.snapshots == "probabilities":
        name, draw = "snapshots_probabilities.png", probability_snapshots
    elif len(features) == 1:
        name, draw = "snapshots_histogram.png", histogram_snapshots
    elif len(features) == 2:
        name, draw = "snapshots_density.png", density_snapshots
    else:
        log.info("run %s: no snapshot figure for %d-dimensional data", run, len(features))
        return {}
    snaps = [
        (
            g,
            fam.load_model(gen_file(settings.chain(run, g), g, "model.safetensors", root)),
            io.read_table(gen_file(settings.chain(run, g), g, "samples.parquet", root)),
        )
        for g in gens
    ]
    return {name: draw(snaps, truth, test, title)}
