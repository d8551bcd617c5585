"""Figures of one run: results/<run>/figures/ (Snakemake rule `plots`).

One PNG per metric (``metric_<name>.png``: the single chain, the ensemble mean
with its bands, the closed-form theory where one is known) and snapshots of the
model at the run's ``plot_generations``: histograms (1-D), density contours
(2-D) or rank-ordered probabilities (categorical).

Figures are byte-identical for identical inputs (Agg, fixed style and dpi, no
software metadata) and the directory is written atomically (``io.atomic_dir``):
everything is rendered into a temporary directory and renamed into place.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from modelcollapse import io  # noqa: E402
from modelcollapse.ensemble import FRAME_COLUMNS  # noqa: E402
from modelcollapse.families import get_family  # noqa: E402
from modelcollapse.families.base import Family  # noqa: E402
from modelcollapse.human import load_truth  # noqa: E402
from modelcollapse.paths import results_dir  # noqa: E402
from modelcollapse.settings import RunSettings  # noqa: E402
from modelcollapse.snapshots import snapshot_figures  # noqa: E402
from modelcollapse.stamps import STAMP_NAME, write_stamp  # noqa: E402

log = logging.getLogger("modelcollapse")

DPI = 100
FIGURES = "figures"
NOT_PLOTTED = ("generation", "train_rows")
LOG_SPAN = 100.0  # a log y-axis when positive values span at least this factor
# A fixed style, independent of the user's matplotlibrc: part of byte-identity.
STYLE: dict[str, Any] = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "font.size": 9,
    "axes.titlesize": 10,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
ENSEMBLE_COLOR, CHAIN_COLOR, THEORY_COLOR = "tab:blue", "tab:orange", "black"


# --- shared plumbing (also used by modelcollapse.report) --------------------------


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    with plt.style.context("default"), matplotlib.rc_context(cast(Any, STYLE)):
        yield


def save_png(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "metric"


def run_label(run: str, settings: RunSettings) -> str:
    """``<run> (<regime>[, rf=..])``: how figures and the report name a run."""
    regime, rf = settings.regime, settings.real_fraction
    return f"{run} ({regime}, rf={rf:g})" if rf is not None else f"{run} ({regime})"


def read_metrics(run: str, root: str | Path = ".") -> pd.DataFrame:
    """results/<run>/metrics.csv; numeric columns, rows sorted by generation."""
    path = results_dir(run, root) / "metrics.csv"
    if not path.exists():
        raise io.ArtifactError(f"missing artifact: {path}")
    frame = pd.read_csv(path)
    if "generation" not in frame.columns:
        raise io.ArtifactError(f"{path}: no 'generation' column")
    frame = frame.apply(pd.to_numeric, errors="coerce")
    return frame.sort_values("generation", kind="stable").reset_index(drop=True)


def read_ensemble(run: str, root: str | Path = ".") -> pd.DataFrame:
    """results/<run>/ensemble.csv; empty when missing, empty or header-only."""
    columns = list(FRAME_COLUMNS)
    path = results_dir(run, root) / "ensemble.csv"
    try:
        frame = pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame(columns=columns)
    if frame.empty or not set(columns) <= set(frame.columns):
        return pd.DataFrame(columns=columns)
    frame["metric"] = frame["metric"].astype(str)
    for col in ("generation", "mean", "median", "std"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame.sort_values(["metric", "generation"], kind="stable").reset_index(drop=True)


def ensemble_metric(ensemble: pd.DataFrame, metric: str) -> pd.DataFrame | None:
    part = ensemble[ensemble["metric"] == metric]
    return None if part.empty else part


def metric_names(metrics: pd.DataFrame, ensemble: pd.DataFrame) -> list[str]:
    """Metrics to draw: metrics.csv's columns in order, then ensemble-only metrics.

    A column without a single number (a note, say) is left out.
    """
    names = [c for c in metrics.columns if c not in NOT_PLOTTED and metrics[c].notna().any()]
    names += sorted(set(ensemble["metric"]) - set(names))
    return names


def _finite(series: Any) -> np.ndarray:
    parts = [np.asarray(x, dtype=float).ravel() for x in series if x is not None]
    flat = np.concatenate(parts) if parts else np.empty(0)
    return flat[np.isfinite(flat)]


def use_log_scale(*series: Any) -> bool:
    """Positive finite values spanning at least ``LOG_SPAN``."""
    flat = _finite(series)
    return bool(flat.size and flat.min() > 0 and flat.max() / flat.min() >= LOG_SPAN)


# Labels of the columns every run has (the families label their own metrics).
BOOKKEEPING_LABELS = {
    "train_human_fraction": "human share of the training set",
    "train_rows": "training rows",
}


def metric_label(family: str, metric: str) -> str:
    """What a figure calls ``metric``: the family's label (meaning and unit), else the
    identifier."""
    labels = get_family(family).metric_labels or {}
    return labels.get(metric) or BOOKKEEPING_LABELS.get(metric) or metric


def median_metrics(family: str) -> tuple[str, ...]:
    """The metrics whose ensemble median figures draw as prominently as the mean."""
    return get_family(family).median_metrics


def log_metrics(family: str) -> tuple[str, ...]:
    """The metrics a family always draws on a log axis (``Family.log_metrics``)."""
    return get_family(family).log_metrics


def fit_y_axis(
    ax: Axes,
    lines: Sequence[Any],
    inner: Sequence[Any] = (),
    outer: Sequence[Any] = (),
    log: bool = False,
) -> float:
    """Scale and limits of a metric's axis; returns the floor to clip bands at.

    Log when ``log`` (and the lines are positive) or the lines are positive and
    span ``LOG_SPAN``. Limits follow the lines
    and the ``inner`` bands; ``outer`` bands (a std) widen them by at most half the
    span. A metric whose lines are non-negative keeps its bands at or above 0.
    """
    core = _finite(lines)
    if core.size == 0:
        return -np.inf
    if use_log_scale(*lines) or (log and core.min() > 0):
        ax.set_yscale("log")
        ax.set_ylim(core.min() / 2, core.max() * 2)
        return float(core.min() / 20)
    floor = 0.0 if core.min() >= 0 else -np.inf
    both = np.maximum(_finite([core, *inner]), floor)
    lo, hi = float(both.min()), float(both.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    wide = np.maximum(_finite(outer), floor)
    if wide.size:
        lo = min(lo, max(float(wide.min()), lo - span / 2))
        hi = max(hi, min(float(wide.max()), hi + span / 2))
    pad = 0.05 * (hi - lo if hi > lo else span)
    ax.set_ylim(lo - pad, hi + pad)
    return floor


# --- metric figures ---------------------------------------------------------------


def _title(run: str, settings: RunSettings, what: str) -> str:
    rf = settings.real_fraction
    where = f"{settings.family}, {settings.regime}, N={settings.samples_per_generation}"
    if rf is not None:
        where += f", real_fraction={rf:g}"
    return f"{run}: {what}\n{where}"


def metric_figure(
    run: str,
    settings: RunSettings,
    metric: str,
    chain: pd.DataFrame,
    ensemble: pd.DataFrame | None,
    theory: Mapping[str, np.ndarray],
    log: bool = False,
    label: str | None = None,
    median_first: bool = False,
) -> Figure:
    """Metric vs generation: single chain, ensemble mean/bands/median, theory.

    ``label`` names the y axis (default: the metric); ``median_first`` draws the
    ensemble median as boldly as the mean (a metric whose collapse is about the
    median: the mean of a martingale stays put while almost every chain collapses)."""
    ylabel = label or metric
    fig, ax = plt.subplots(figsize=(7.0, 4.8), layout="constrained")
    lines: list[tuple[np.ndarray, np.ndarray, dict[str, Any]]] = []
    expected, median = theory.get(metric), theory.get(f"{metric}/median")
    std_band = se_band = None
    if ensemble is not None:
        k = settings.chains
        g, mean, std = (ensemble[c].to_numpy(float) for c in ("generation", "mean", "std"))
        se = std / math.sqrt(max(k, 1))
        std_band, se_band = (mean - std, mean + std), (mean - 2 * se, mean + 2 * se)
        lines.append(
            (g, mean, {"color": ENSEMBLE_COLOR, "lw": 1.6, "label": f"ensemble mean (K={k})"})
        )
        if median is not None or median_first:
            med = ensemble["median"].to_numpy(float)
            width = 2.2 if median_first else 1.4
            lines.append((g, med, {"color": "tab:green", "lw": width, "label": "ensemble median"}))
    if metric in chain.columns and chain[metric].notna().any():
        values = chain[metric].to_numpy(float)
        style: dict[str, Any] = {"color": CHAIN_COLOR, "lw": 1.0, "ms": 3, "alpha": 0.9}
        style |= {"marker": "o" if len(values) <= 100 else None}
        style["label"] = f"single chain (seed {settings.seed})"
        lines.append((chain["generation"].to_numpy(float), values, style))
    for key, ls, what in ((expected, "--", "theory: expected"), (median, ":", "theory: median")):
        if key is not None:
            values = np.asarray(key, dtype=float)
            style = {"color": THEORY_COLOR, "ls": ls, "lw": 1.4, "label": what}
            lines.append((np.arange(len(values), dtype=float), values, style))
    central = [values for _, values, _ in lines]
    if std_band is None or se_band is None:
        floor = fit_y_axis(ax, central, log=log)
    else:
        floor = fit_y_axis(ax, central, inner=[se_band], outer=[std_band], log=log)
    if std_band is not None and se_band is not None:
        for (lower, upper), band, alpha in (
            (std_band, "ensemble mean ± 1 std", 0.12),
            (se_band, "ensemble mean ± 2 s.e.", 0.35),
        ):
            lower, upper = np.maximum(lower, floor), np.maximum(upper, floor)
            ax.fill_between(g, lower, upper, color=ENSEMBLE_COLOR, alpha=alpha, lw=0, label=band)
    for x, values, style in lines:
        ax.plot(x, values, **style)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("generation")
    ax.set_ylabel(ylabel)
    ax.set_title(_title(run, settings, metric))
    if lines:
        fig.legend(loc="outside lower center", ncols=3)
    return fig


def family_theory(fam: Family, truth: Any, settings: RunSettings) -> dict[str, np.ndarray]:
    """The family's closed forms for the run's setting; {} where it has none."""
    if fam.theory is None:
        return {}
    try:
        return dict(fam.theory(truth, settings))
    except NotImplementedError:
        return {}


# --- the entry point --------------------------------------------------------------


def plot_run(
    run: str,
    settings: RunSettings,
    root: str | Path = ".",
    stamp: dict[str, Any] | None = None,
) -> list[Path]:
    """Write results/<run>/figures/ (atomically, with the step's ``stamp``) and return
    its figures, sorted."""
    root = Path(root)
    fam = get_family(settings.family)
    metrics, ensemble = read_metrics(run, root), read_ensemble(run, root)
    truth = load_truth(fam, settings.human, root)
    theory = family_theory(fam, truth, settings)

    target = results_dir(run, root) / FIGURES
    with figure_style(), io.atomic_dir(target) as tmp:
        written: list[str] = []
        for metric in metric_names(metrics, ensemble):
            name = f"metric_{safe_name(metric)}.png"
            part = ensemble_metric(ensemble, metric)
            fig = metric_figure(
                run, settings, metric, metrics, part, theory,
                log=metric in fam.log_metrics,
                label=metric_label(settings.family, metric),
                median_first=metric in fam.median_metrics,
            )  # fmt: skip
            save_png(fig, tmp / name)
            written.append(name)
        title = functools.partial(_title, run, settings)
        figures = snapshot_figures(run, settings, fam, truth, root, title=title)
        for name, fig in figures.items():
            save_png(fig, tmp / name)
            written.append(name)
        if stamp is not None:
            write_stamp(tmp / STAMP_NAME, **stamp)
    log.info("run %s: wrote %d figures to %s", run, len(written), target)
    return sorted(target / name for name in written)
