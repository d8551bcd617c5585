"""The report directory (``paths.REPORT_DIR``): the regimes compared and the run overview.

``report.md`` holds one table per family (settings and the final generation's key
metrics) and links every figure; ``figures/regimes_<family>.png`` draws a family's
runs side by side, ``figures/compare_<name>.png`` each ``report.compare`` group of
params.yaml. For DVC (dvc.yaml's top-level ``metrics`` and ``plots``):
``metrics/<run>.json``, one short row per run for ``dvc metrics show``, and
``trends/<family>.csv``, the family's first key metric by generation and run with the
ensemble's spread, drawn by the ``band`` template (.dvc/plots/band.json).
Deterministic (no timestamps) and written atomically, like the run figures.
"""

from __future__ import annotations

import json
import logging
import math
import posixpath
from collections.abc import Set
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from modelcollapse import io
from modelcollapse.families import get_family
from modelcollapse.lineage.summary import SUMMARY_NAME, lineage_summary_text
from modelcollapse.paths import REPORT_DIR, RESULTS_DIR
from modelcollapse.plots import (
    FIGURES,
    ensemble_metric,
    figure_style,
    fit_y_axis,
    log_metrics,
    median_metrics,
    metric_label,
    read_ensemble,
    read_metrics,
    run_label,
    safe_name,
    save_png,
)
from modelcollapse.report_html import HTML_NAME, HtmlPage
from modelcollapse.settings import RunSettings
from modelcollapse.stamps import STAMP_NAME, write_stamp

log = logging.getLogger("modelcollapse")

BOOKKEEPING = ("generation", "train_rows", "train_human_fraction")
REPORT_FIGURES = "figures"  # the report's PNGs (dvc.yaml: image plots)
TRENDS = "trends"  # trends/<family>.csv (dvc.yaml: plots, template band)
RUN_METRICS = "metrics"  # metrics/<run>.json (dvc.yaml: metrics)

INTRO = """\
# Model collapse: report

Each run trains a model on data, samples a synthetic data set from it, trains the
next generation on a training set composed by the run's *regime*, and so on
(Shumailov et al. 2023, *The Curse of Recursion*). Every metric compares a
generation's model or samples with the human data: with their known true
distribution for the statistical families, with held-out human test data (and the
generation-0 model) for the neural families on real text and digits.

| regime | generation n trains on |
|---|---|
| replace | N rows sampled from model n-1 |
| mix | real_fraction of N drawn afresh from the human pool, the rest from model n-1 |
| accumulate | all human rows plus every synthetic set so far |
| accumulate_subsample | N rows drawn uniformly from the accumulated pool |
| fresh | real_fraction of N new human rows never used before, the rest from model n-1 |

The tables give each run's settings and its key metrics at the final generation:
the single chain's value and, where the run has an ensemble of K independent
chains, the ensemble mean ± its standard error (std / sqrt(K)). The figures draw
the ensemble mean where one exists, else the single chain.
"""


def key_metrics(family: str) -> tuple[str, ...]:
    """The metrics that summarise collapse in a family (its ``Family.key_metrics``)."""
    return get_family(family).key_metrics


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return "nan" if not math.isfinite(value) else format(value, ".4g")


class RunResults:
    """One run's settings, metrics.csv and ensemble.csv, read once."""

    unit = "chains"  # what the ensemble's spread is over
    geometric: frozenset[str] | set[str] = frozenset()  # metrics summarised in logs

    def __init__(self, run: str, settings: RunSettings, root: Path) -> None:
        self.run, self.settings = run, settings
        self.metrics = read_metrics(run, root)
        self.ensemble = read_ensemble(run, root)
        self.chains = settings.chains

    @property
    def label(self) -> str:
        return run_label(self.run, self.settings)

    def curve(self, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        """(generations, values, standard errors or None): ensemble mean, else the chain."""
        part = ensemble_metric(self.ensemble, metric)
        if part is not None:
            se = part["std"].to_numpy(float) / math.sqrt(max(self.chains, 1))
            return part["generation"].to_numpy(float), part["mean"].to_numpy(float), se
        if metric in self.metrics.columns and self.metrics[metric].notna().any():
            return (
                self.metrics["generation"].to_numpy(float),
                self.metrics[metric].to_numpy(float),
                None,
            )
        return None

    def band(
        self, metric: str, width: float = 2.0, spread: str = "se"
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(lower, upper) around the ensemble's curve: ``width`` standard errors
        (``spread="se"``) or standard deviations (``"sd"``) either side of the mean, or
        for a metric in :attr:`geometric` (mean and std of its log) that many times
        exp(±...) the geometric mean; None without an ensemble."""
        part = ensemble_metric(self.ensemble, metric)
        if part is None:
            return None
        mean, half = part["mean"].to_numpy(float), width * part["std"].to_numpy(float)
        if spread == "se":
            half = half / math.sqrt(max(self.chains, 1))
        if metric in self.geometric:
            return mean * np.exp(-half), mean * np.exp(half)
        return mean - half, mean + half

    def final(self, metric: str) -> tuple[float | None, tuple[float, float] | None]:
        """The last generation's chain value and (ensemble mean, standard error)."""
        chain = None
        if metric in self.metrics.columns and len(self.metrics):
            chain = float(self.metrics[metric].iloc[-1])
        ens = None
        part = ensemble_metric(self.ensemble, metric)
        if part is not None:
            last = part.iloc[-1]
            ens = (float(last["mean"]), float(last["std"]) / math.sqrt(max(self.chains, 1)))
        return chain, ens


class SeedGroup(RunResults):
    """A run and its replicates (``runs.<id>.replicate_of``): one setting, several seeds.

    Its ``ensemble`` summarises the seeds' chains generation by generation (mean,
    median, standard deviation across seeds, over the generations every seed has), so
    the figures, findings and DVC trends draw it as they draw an ensemble of K chains,
    with K the number of seeds. A metric the family draws on a log axis
    (``Family.log_metrics``: a perplexity that one seed may multiply tenfold) is
    summarised in logs (:attr:`geometric`): its ``mean`` is the geometric mean, its
    ``std`` the standard deviation of the log, and its band multiplicative."""

    unit = "seeds"

    def __init__(self, members: list[RunResults]) -> None:
        base = members[0]
        self.run, self.settings, self.members = base.run, base.settings, members
        self.metrics = base.metrics
        self.chains = len(members)
        self.geometric = {
            name
            for name in log_metrics(base.settings.family)
            if all(_positive(m.metrics, name) for m in members)
        }
        self.ensemble = _across_seeds(members, self.geometric)

    @property
    def label(self) -> str:
        return f"{run_label(self.run, self.settings)}, {self.chains} seeds"

    def factors(self, metric: str) -> list[float]:
        """Each seed's last / first value of ``metric`` (its own chain)."""
        out = []
        for m in self.members:
            if metric in m.metrics.columns and len(m.metrics) > 1:
                first, last = (float(v) for v in m.metrics[metric].to_numpy(float)[[0, -1]])
                if first and math.isfinite(last / first):
                    out.append(last / first)
        return out


def _positive(metrics: Any, name: str) -> bool:
    """Whether metrics.csv has column ``name`` with numbers, every one of them > 0."""
    if name not in metrics.columns:
        return False
    values = metrics[name].to_numpy(float)
    values = values[np.isfinite(values)]
    return values.size > 0 and bool((values > 0).all())


def _across_seeds(members: list[RunResults], geometric: Set[str] = frozenset()) -> Any:
    """``ensemble.csv``'s form over the members' single chains (metrics.csv); the
    metrics in ``geometric`` summarised in logs (mean and median turned back by exp,
    std left in log units: :meth:`SeedGroup.band`)."""
    from modelcollapse.ensemble import ensemble_frame

    length = min(len(m.metrics) for m in members)
    names = [
        c
        for c in members[0].metrics.columns
        if c not in BOOKKEEPING and all(c in m.metrics.columns for m in members)
    ]
    stacked = {
        name: np.stack([m.metrics[name].to_numpy(float)[:length] for m in members], axis=1)
        for name in names
    }
    for name in geometric & stacked.keys():
        stacked[name] = np.log(stacked[name])
    frame = ensemble_frame({k: v for k, v in stacked.items() if np.isfinite(v).any()})
    logged = frame["metric"].isin(list(geometric))
    frame.loc[logged, ["mean", "median"]] = np.exp(frame.loc[logged, ["mean", "median"]])
    return frame


def _number(value: float) -> str:
    """A CSV cell: shortest round-trip form; empty for a missing or non-finite value."""
    return repr(float(value)) if math.isfinite(value) else ""


def trend_table(metric: str, results: list[RunResults]) -> str:
    """CSV of ``metric`` by run and generation: the ensemble mean (the metric's own
    column, DVC's y), its median and mean ± one standard deviation across chains
    (``lower``, ``upper``; across seeds, a log-axis metric's geometric mean ×/÷ one
    standard deviation of its log); a run without an ensemble gives its chain's value
    in all four."""
    lines = [f"generation,run,lower,upper,median,{metric}"]
    for r in results:
        part = ensemble_metric(r.ensemble, metric)
        band = r.band(metric, 1.0, "sd")
        if part is not None and band is not None:
            lower, upper = band
            columns = (part[c].to_numpy(float) for c in ("generation", "mean", "median"))
            for g, mean, median, lo, hi in zip(*columns, lower, upper, strict=True):
                cells = [_number(lo), _number(hi), _number(median)]
                lines.append(f"{int(g)},{r.run},{','.join(cells)},{_number(mean)}")
        elif metric in r.metrics.columns:
            for g, v in zip(r.metrics["generation"], r.metrics[metric], strict=True):
                lines.append(f"{int(g)},{r.run}," + ",".join([_number(float(v))] * 4))
    return "\n".join(lines) + "\n"


def run_summary(r: RunResults) -> dict[str, Any]:
    """One run in a few numbers, for ``dvc metrics show``: the family's first key metric
    at generation 0 and at the last generation (ensemble mean where the run has one),
    their ratio, and the human share of the last generation's training set."""
    metric = key_metrics(r.settings.family)[0]
    curve = r.curve(metric)
    out: dict[str, Any] = {"metric": metric, "generations": int(r.settings.generations)}
    if curve is not None and len(curve[1]):
        first, last = float(curve[1][0]), float(curve[1][-1])
        out |= {"first": first, "last": last}
        if first != 0 and math.isfinite(first) and math.isfinite(last):
            out["ratio"] = last / first
    if "train_human_fraction" in r.metrics.columns and len(r.metrics):
        out["human_share"] = float(r.metrics["train_human_fraction"].iloc[-1])
    finite = {k: v for k, v in out.items() if not isinstance(v, float) or math.isfinite(v)}
    return finite


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _same_curves(curves: list[tuple[int, RunResults, Any]]) -> dict[int, str]:
    """Run index -> the earlier run whose curve it repeats exactly (drawn on top of it)."""
    same: dict[int, str] = {}
    for pos, (i, _, (g, values, _)) in enumerate(curves):
        for _, earlier, (g0, values0, _) in curves[:pos]:
            if np.array_equal(g, g0) and np.array_equal(values, values0, equal_nan=True):
                same[i] = earlier.run
                break
    return same


def comparison_figure(title: str, results: list[RunResults], metrics: list[str]) -> Figure:
    """One panel per metric, one line per run (mean ± 2 s.e. band where an ensemble).

    Each run has its colour and marker shape, markers staggered along the curve, so
    that runs whose curves coincide (mix and fresh draw the same human rows, for
    instance) stay visible; the legend says which repeats which. Where the family says
    a metric's collapse shows in the median (``Family.median_metrics``), each ensemble's
    median is drawn dashed beside its mean."""
    panels = max(len(metrics), 1)
    size = (max(5.2 * panels, 8.0), 4.8)
    fig, axes = plt.subplots(1, panels, figsize=size, layout="constrained", squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles: dict[str, Any] = {}
    ensembles = medians = singles = False
    repeats: dict[str, str] = {}
    geometric: set[str] = set()  # seed groups drawn with a geometric mean somewhere
    for ax, metric in zip(axes[0], metrics, strict=False):
        curves = [(i, r, c) for i, r in enumerate(results) if (c := r.curve(metric)) is not None]
        ensembles |= any(c[2] is not None for _, _, c in curves)
        singles |= any(c[2] is None for _, _, c in curves)
        central = [c[1] for _, _, c in curves]
        bands = {i: band for i, r, _ in curves if (band := r.band(metric)) is not None}
        geometric |= {r.label for i, r, _ in curves if metric in r.geometric}
        with_median = {
            i: part["median"].to_numpy(float)
            for i, r, c in curves
            if c[2] is not None
            and metric in median_metrics(r.settings.family)
            and (part := ensemble_metric(r.ensemble, metric)) is not None
        }
        log_axis = any(metric in log_metrics(r.settings.family) for _, r, _ in curves)
        floor = fit_y_axis(
            ax, central + list(with_median.values()), list(bands.values()), log=log_axis
        )
        same = _same_curves(curves)
        for i, r, (g, values, se) in curves:
            color = colors[i % len(colors)]
            # about 8 markers a curve, each run's shifted along it (at least one
            # point apart where the curves are short)
            step = max(1, len(g) // 8, min(len(results), len(g) // 2))
            marks = {
                "marker": MARKERS[i % len(MARKERS)],
                "markevery": (i * step // max(len(results), 1) % step, step),
                "ms": 5,
            }
            if i in same:
                repeats[r.label] = same[i]
            if se is None:
                (line,) = ax.plot(g, values, color=color, lw=1.0, ls="--", label=r.label, **marks)
            else:
                lower, upper = (np.maximum(edge, floor) for edge in bands[i])
                ax.fill_between(g, lower, upper, color=color, alpha=0.2, lw=0)
                (line,) = ax.plot(g, values, color=color, lw=1.6, label=r.label, **marks)
            if i in with_median:
                ax.plot(g, with_median[i], color=color, lw=1.6, ls=(0, (4, 2)))
                medians = True
            handles.setdefault(r.label, line)
        family = curves[0][1].settings.family if curves else None
        ax.set_title(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("generation")
        ax.set_ylabel(metric_label(family, metric) if family else metric)
    if handles:
        names = [f"{name} (= {repeats[name]})" if name in repeats else name for name in handles]
        fig.legend(handles.values(), names, loc="outside lower center", ncols=3)
    spread = " or ".join(dict.fromkeys(f"K {r.unit}" for r in results if r.chains > 1))
    how = [f"solid: mean ± 2 s.e. over {spread}"]
    how += ["across seeds on a log axis: geometric mean ×/÷ 2 s.e."] if geometric else []
    how += ["long dashes: median"] if medians else []
    how += ["dashed: the single chain"] if singles else []
    fig.suptitle(f"{title}\n{'; '.join(how)}" if ensembles else f"{title}\none chain per run")
    return fig


def _table(family: str, results: list[RunResults]) -> tuple[list[str], list[list[str]]]:
    """The family table: header and one row of plain cells per run."""
    keys = key_metrics(family)
    header = ["run", "regime", "N", "real_fraction", "generations", "chains", *keys]
    rows = []
    for r in results:
        s = r.settings
        rf = s.real_fraction
        cells = [
            r.run,
            s.regime,
            str(s.samples_per_generation),
            "–" if rf is None else f"{rf:g}",
            str(s.generations),
            str(r.chains),
        ]
        for metric in keys:
            chain, ens = r.final(metric)
            cell = _fmt(chain)
            if ens is not None:
                cell += f" (ens. {_fmt(ens[0])} ± {_fmt(ens[1])})"
            cells.append(cell)
        rows.append(cells)
    return header, rows


def _family_table(family: str, results: list[RunResults], root: Path) -> list[str]:
    """The table in Markdown; the figures column links each key metric's figure file
    (index.html lists every figure)."""
    header, rows = _table(family, results)
    lines = ["| " + " | ".join([*header, "figures"]) + " |", "|" + "---|" * (len(header) + 1)]
    for r, cells in zip(results, rows, strict=True):
        files = {posixpath.basename(f): f for f in _run_figures(r.run, root)}
        links = [
            f"[{metric}]({files[name]})"
            for metric in key_metrics(family)
            if (name := f"metric_{safe_name(metric)}.png") in files
        ]
        row = [f"`{cells[0]}`", *cells[1:], ", ".join(links) or "–"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _regime_text(settings: RunSettings) -> str:
    rf = settings.real_fraction
    if settings.regime == "mix" and rf:
        return f"mix, {rf:.0%} human data"
    if settings.regime == "fresh" and rf:
        return f"fresh, {rf:.0%} new human data"
    return settings.regime


def finding(r: RunResults) -> str | None:
    """One run's headline in numbers: the family's first key metric from generation 0
    to the last (the ensemble mean where there is one), the factor, and for a metric
    whose collapse is about the median, the ensemble median too."""
    family = r.settings.family
    metric = key_metrics(family)[0]
    curve = r.curve(metric)
    if curve is None or len(curve[1]) < 2:
        return None
    g, values, se = curve
    first, last = float(values[0]), float(values[-1])
    factor = f" (×{last / first:.3g})" if first and math.isfinite(last / first) else ""
    text = (
        f"`{r.run}` ({_regime_text(r.settings)}, N = {r.settings.samples_per_generation}): "
        f"{metric_label(family, metric)} {first:.4g} → {last:.4g} in {int(g[-1])} "
        f"generations{factor}"
    )
    if se is not None:
        mean = "geometric mean" if metric in r.geometric else "mean"
        text += f", {mean} of {r.chains} {r.unit}"
        if isinstance(r, SeedGroup) and len(factors := r.factors(metric)) > 1:
            text += f" (×{min(factors):.3g} to ×{max(factors):.3g} across seeds)"
        part = ensemble_metric(r.ensemble, metric)
        if metric in median_metrics(family) and part is not None:
            m0, m1 = (float(v) for v in part["median"].to_numpy(float)[[0, -1]])
            text += f"; median {m0:.4g} → {m1:.4g}" + (f" (×{m1 / m0:.3g})" if m0 else "")
    return text


def _run_figures(run: str, root: Path) -> list[str]:
    """The run's PNGs, as paths relative to the report directory."""
    folder = root / RESULTS_DIR.format(run=run) / FIGURES
    base = posixpath.relpath(f"{RESULTS_DIR.format(run=run)}/{FIGURES}", REPORT_DIR)
    return [f"{base}/{p.name}" for p in sorted(folder.glob("*.png"))] if folder.is_dir() else []


def _plan_figures(
    families: dict[str, list[RunResults]], compare: dict[str, list[str]], results: dict
) -> tuple[dict[str, list[tuple[str, str, list[RunResults]]]], list[tuple[str, str, list]]]:
    """Which comparison figures to draw, each once: per family, its group figures (a
    ``report.compare`` group whose runs are all of that family) and its own figure unless
    a group already shows exactly its runs; groups spanning families apart."""
    by_family: dict[str, list[tuple[str, str, list[RunResults]]]] = {f: [] for f in families}
    mixed: list[tuple[str, str, list[RunResults]]] = []
    for name, members in compare.items():
        chosen = [results[m] for m in members]
        kinds = {r.settings.family for r in chosen}
        entry = (name, f"{REPORT_FIGURES}/compare_{safe_name(name)}.png", chosen)
        (by_family[kinds.pop()] if len(kinds) == 1 else mixed).append(entry)
    for family, runs_of in families.items():
        own = {r.run for r in runs_of}
        covered = any({r.run for r in chosen} == own for _, _, chosen in by_family[family])
        if not covered:
            image = f"{REPORT_FIGURES}/regimes_{safe_name(family)}.png"
            by_family[family].insert(0, (f"{family}: runs compared", image, runs_of))
    return by_family, mixed


def _shown(chosen: list[RunResults]) -> list[str]:
    """The key metrics of the runs' families, in order, once each."""
    return list(dict.fromkeys(k for r in chosen for k in key_metrics(r.settings.family)))


def write_report(
    runs: dict[str, RunSettings],
    compare: dict[str, list[str]],
    root: str | Path = ".",
    stamp: dict[str, Any] | None = None,
    replicates: dict[str, list[str]] | None = None,
) -> Path:
    """Write the report directory (report.md and index.html with findings, tables and
    figures; the comparison figures; the lineage summary, lineage.md; the files for
    DVC) in one piece, with the step's ``stamp``; return report.md.

    A run with replicates (``replicates``: run -> its replicates) is drawn, summarised
    and compared as one :class:`SeedGroup`; the tables list every chain."""
    root = Path(root)
    replicates = replicates or {}
    results = {run: RunResults(run, settings, root) for run, settings in runs.items()}
    in_groups = {m for members in replicates.values() for m in members}
    drawn: dict[str, RunResults] = {
        run: SeedGroup([r, *(results[m] for m in replicates[run])]) if run in replicates else r
        for run, r in results.items()
        if run not in in_groups
    }
    families: dict[str, list[RunResults]] = {}  # what is drawn and summarised
    chains_of: dict[str, list[RunResults]] = {}  # every chain: the tables
    for result in results.values():
        chains_of.setdefault(result.settings.family, []).append(result)
    for result in drawn.values():
        families.setdefault(result.settings.family, []).append(result)
    for name, members in compare.items():
        unknown = [m for m in members if m not in results]
        if unknown:
            raise ValueError(f"report.compare.{name}: unknown runs {unknown}")
    # A group member named in a comparison stands for its own chain.
    by_family, mixed = _plan_figures(families, compare, {**results, **drawn})
    md = [INTRO]
    page = HtmlPage()
    target = root / REPORT_DIR
    with figure_style(), io.atomic_dir(target) as tmp:
        for sub in (REPORT_FIGURES, TRENDS, RUN_METRICS):
            (tmp / sub).mkdir()
        for run, result in results.items():
            summary = json.dumps(run_summary(result), indent=1, sort_keys=True) + "\n"
            (tmp / RUN_METRICS / f"{safe_name(run)}.json").write_text(summary, encoding="utf-8")
        for family, runs_of in families.items():
            keys = list(key_metrics(family))
            trend = trend_table(keys[0], runs_of)
            (tmp / TRENDS / f"{safe_name(family)}.csv").write_text(trend, encoding="utf-8")
            found = [f for r in runs_of if (f := finding(r)) is not None]
            chains = chains_of[family]
            md += [f"## {family}", "", *(f"- {f}" for f in found), ""]
            md += [*_family_table(family, chains, root), ""]
            header, rows = _table(family, chains)
            figures = {r.run: _run_figures(r.run, root) for r in chains}
            page.family(family, found, header, rows, figures)
            for title, image, chosen in by_family[family]:
                save_png(comparison_figure(title, chosen, _shown(chosen)), tmp / image)
                md += [f"![{title}]({image})", ""]
                page.figure(title, image, [r.run for r in chosen])
        if mixed:
            md += ["## Comparisons", ""]
            page.heading("Comparisons")
        for name, image, chosen in mixed:
            save_png(comparison_figure(name, chosen, _shown(chosen)), tmp / image)
            md += [f"### {name}", "", "Runs: " + ", ".join(f"`{r.run}`" for r in chosen), ""]
            md += [f"![{name}]({image})", ""]
            page.figure(name, image, [r.run for r in chosen])
        (tmp / "report.md").write_text("\n".join(md).rstrip("\n") + "\n", encoding="utf-8")
        (tmp / HTML_NAME).write_text(page.text(), encoding="utf-8")
        (tmp / SUMMARY_NAME).write_text(
            lineage_summary_text({run: s.to_dict() for run, s in runs.items()}, root),
            encoding="utf-8",
        )
        if stamp is not None:
            write_stamp(tmp / STAMP_NAME, **stamp)
    log.info("report: %d runs, %d families, %d comparisons", len(runs), len(families), len(compare))
    return target / "report.md"
