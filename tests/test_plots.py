"""Run figures (modelcollapse.plots, .snapshots) and the report (modelcollapse.report).

A tiny results tree is built by hand: real truths and checkpoints of every family
(fitted through the family contract), metrics.csv from each family's `evaluate`,
and ensemble.csv files that are full, header-only, zero-byte or missing.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from modelcollapse import io
from modelcollapse.config import make_run_settings
from modelcollapse.families import get_family
from modelcollapse.io import atomic_dir
from modelcollapse.paths import REPORT_DIR, gen_file, human_file, results_dir
from modelcollapse.plots import fit_y_axis, metric_figure, plot_run, use_log_scale
from modelcollapse.report import write_report
from modelcollapse.settings import RunSettings

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GENERATIONS, N = 4, 60

HUMAN = {
    "g1": ("gaussian", {"dim": 1, "mean": 0.0, "std": 1.0}),
    "gmm2": (
        "gmm",
        {
            "weights": [0.5, 0.5],
            "means": [[-2.0, 0.0], [2.0, 0.0]],
            "covariances": [[[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.2], [0.2, 0.5]]],
        },
    ),
    "zipf": ("categorical", {"num_symbols": 12, "zipf_exponent": 1.1}),
    "lin": ("linear_regression", {"dim": 3, "noise_std": 1.0}),
}
GMM_OPTIONS = {"n_components": 2, "covariance_type": "full", "tol": 1e-3, "max_iter": 100}


def _settings(human: str, regime: str = "replace", real_fraction=None, chains=1, options=None):
    return make_run_settings(
        HUMAN[human][0],
        human=human,
        regime=regime,
        generations=GENERATIONS,
        samples_per_generation=N,
        real_fraction=real_fraction,
        chains=chains,
        options=options or {},
        plot_generations=[0, 2, GENERATIONS - 1],
    )


RUNS = {
    # a full ensemble, with the theory overlay of the Gaussian replace chain
    "gauss_replace": _settings("g1", chains=50, options={"estimator": "unbiased"}),
    "gauss_mix": _settings("g1", "mix", 0.5),  # header-only ensemble.csv
    "gmm_replace": _settings("gmm2", options=GMM_OPTIONS),  # zero-byte ensemble.csv
    "cat_replace": _settings("zipf", chains=20),
    "lin_replace": _settings("lin"),  # no ensemble.csv; an unknown metric column
}
COMPARE = {"gaussians": ["gauss_replace", "gauss_mix"]}
SNAPSHOT = {
    "gaussian": "snapshots_histogram.png",
    "gmm": "snapshots_density.png",
    "categorical": "snapshots_probabilities.png",
    "linear_regression": None,
}


def _build_run(root: Path, run: str, settings: RunSettings, seed: int = 7) -> pd.DataFrame:
    """A short replace chain through the family contract; metrics.csv and ensemble.csv."""
    fam = get_family(settings.family)
    truth = fam.model.load(human_file(settings.human, "truth.safetensors", root))
    test = io.read_table(human_file(settings.human, "test.parquet", root))
    rng = np.random.default_rng(seed)
    train = truth.sample(N, rng)
    rows = []
    for g in range(GENERATIONS):
        model = fam.build_model(settings.options, truth, random_state=g).fit(train)
        model.save(gen_file(settings.chain(run, g), g, "model.safetensors", root))
        samples = model.sample(N, rng)
        io.write_table(gen_file(settings.chain(run, g), g, "samples.parquet", root), samples)
        metrics = fam.evaluate(model, truth, test, samples)
        rows.append({"generation": g, **metrics, "train_rows": N, "train_human_fraction": 0.0})
        train = samples
    frame = pd.DataFrame(rows)
    if run == "lin_replace":
        frame["mystery_metric"] = np.geomspace(1.0, 1e-4, GENERATIONS)  # unknown, log-scaled
        frame["note"] = "text"  # not a number: no figure, no crash
    out = results_dir(run, root)
    io.write_text(out / "metrics.csv", frame.to_csv(index=False, float_format="%.10g"))
    metric_cols = [c for c in frame.columns if c not in ("generation", "train_rows", "note")]
    if settings.chains > 1:
        parts = [
            pd.DataFrame(
                {
                    "generation": np.arange(GENERATIONS),
                    "metric": name,
                    "mean": frame[name].to_numpy() * 1.1,
                    "median": frame[name].to_numpy() * 0.9,
                    "std": np.full(GENERATIONS, 0.2),
                }
            )
            for name in metric_cols
        ]
        parts.append(parts[0].assign(metric="ensemble_only"))
        io.write_text(out / "ensemble.csv", pd.concat(parts).to_csv(index=False))
    elif run == "gauss_mix":
        io.write_text(out / "ensemble.csv", "generation,metric,mean,median,std\n")
    elif run == "gmm_replace":
        io.write_text(out / "ensemble.csv", "")
    return frame


def _human(root: Path, sources) -> None:
    for i, source in enumerate(sources):
        family, spec = HUMAN[source]
        truth = get_family(family).truth_from_spec(spec)
        truth.save(human_file(source, "truth.safetensors", root))
        test = truth.sample(300, np.random.default_rng(i))
        io.write_table(human_file(source, "test.parquet", root), test)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pd.DataFrame]]:
    root = tmp_path_factory.mktemp("tree")
    _human(root, HUMAN)
    frames = {run: _build_run(root, run, settings) for run, settings in RUNS.items()}
    return root, frames


@pytest.fixture(scope="module")
def plotted(tree) -> dict[str, dict[str, bytes]]:
    """Every run plotted twice; the bytes of each pass."""
    root, _ = tree
    passes = []
    for _ in range(2):
        files = {run: plot_run(run, settings, root) for run, settings in RUNS.items()}
        passes.append(
            {run: {p.name: p.read_bytes() for p in paths} for run, paths in files.items()}
        )
    assert passes[0] == passes[1], "figures differ between two runs on identical inputs"
    return passes[1]


def _expected_figures(run: str, frame: pd.DataFrame) -> set[str]:
    names = {f"metric_{c}.png" for c in frame.columns}
    names -= {"metric_generation.png", "metric_train_rows.png", "metric_note.png"}
    if RUNS[run].chains > 1:
        names.add("metric_ensemble_only.png")
    snapshot = SNAPSHOT[RUNS[run].family]
    return names | ({snapshot} if snapshot else set())


def test_plot_run_writes_one_figure_per_metric_and_the_snapshots(tree, plotted):
    root, frames = tree
    for run, frame in frames.items():
        figures = results_dir(run, root) / "figures"
        assert set(plotted[run]) == _expected_figures(run, frame), run
        assert sorted(p.name for p in figures.iterdir()) == sorted(plotted[run])
        for data in plotted[run].values():
            assert data.startswith(PNG_MAGIC) and len(data) > 1000
        # only the figures directory and the inputs: no temporary directory left behind
        assert sorted(p.name for p in results_dir(run, root).iterdir()) == sorted(
            ["figures", "metrics.csv"] + (["ensemble.csv"] if run != "lin_replace" else [])
        )
    assert "metric_mystery_metric.png" in plotted["lin_replace"]


def test_plot_run_replaces_an_old_figures_directory(tree, plotted):
    root, _ = tree
    figures = results_dir("gauss_mix", root) / "figures"
    (figures / "stale.png").write_bytes(b"old")
    paths = plot_run("gauss_mix", RUNS["gauss_mix"], root)
    assert not (figures / "stale.png").exists()
    assert {p.name: p.read_bytes() for p in paths} == plotted["gauss_mix"]


def test_atomic_dir_keeps_the_old_directory_when_rendering_fails(tmp_path):
    target = tmp_path / "figures"
    target.mkdir()
    (target / "a.png").write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.png").write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert (target / "a.png").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["figures"]


def test_metric_figure_draws_bands_median_and_theory_on_a_log_axis():
    g = np.arange(5)
    chain = pd.DataFrame({"generation": g, "var_trace": [1.0, 0.3, 0.05, 0.01, 0.002]})
    ensemble = pd.DataFrame(
        {"generation": g, "mean": np.ones(5), "median": 0.5 ** (g + 1), "std": np.ones(5)}
    )
    theory = {"var_trace": np.ones(5), "var_trace/median": 0.5 ** (g + 1)}
    settings = dataclasses.replace(_settings("g1", chains=100), generations=5)
    fig = metric_figure("r", settings, "var_trace", chain, ensemble, theory)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == [
        "ensemble mean (K=100)",
        "ensemble median",
        "single chain (seed 0)",
        "theory: expected",
        "theory: median",
    ]
    assert ax.get_yscale() == "log"
    assert len(ax.collections) == 2  # the ±1 std and ±2 s.e. bands
    assert "gaussian, replace, N=60" in ax.get_title()
    # no theory median: no ensemble median either
    fig = metric_figure("r", settings, "var_trace", chain, ensemble, {"var_trace": np.ones(5)})
    assert "ensemble median" not in [line.get_label() for line in fig.axes[0].get_lines()]


def test_y_axis_goes_log_only_for_positive_values_spanning_orders_of_magnitude():
    assert use_log_scale([1.0, 1e-3])
    assert not use_log_scale([1.0, 0.5])
    assert not use_log_scale([1.0, 0.0, 1e-5])
    assert not use_log_scale([np.nan])
    fig, ax = plt.subplots()
    floor = fit_y_axis(ax, [np.array([1.0, 2.0])], outer=[(np.array([-5.0, -5.0]), np.ones(2))])
    assert floor == 0.0 and ax.get_ylim()[0] >= -0.1  # a non-negative metric stays above 0
    plt.close(fig)


def test_a_family_can_ask_for_a_log_axis_for_its_metrics():
    from modelcollapse.plots import log_metrics

    assert "test_perplexity" in log_metrics("lm") and log_metrics("gaussian") == ()
    for lines, scale in (([np.array([120.0, 300.0])], "log"), ([np.array([0.0, 3.0])], "linear")):
        fig, ax = plt.subplots()
        fit_y_axis(ax, lines, log=True)  # a perplexity spanning less than LOG_SPAN; a zero
        assert ax.get_yscale() == scale
        plt.close(fig)


def _cell(value: float) -> str:
    return "nan" if not math.isfinite(value) else format(value, ".4g")


def test_report_has_a_row_per_run_with_final_metrics_and_is_reproducible(tree, plotted):
    root, frames = tree
    path = write_report(RUNS, COMPARE, root)
    assert path == root / REPORT_DIR / "report.md"

    def files():
        return {
            p.relative_to(path.parent).as_posix(): p.read_bytes()
            for p in path.parent.rglob("*")
            if p.is_file()
        }

    first = files()
    write_report(RUNS, COMPARE, root)
    assert files() == first
    families = ("gaussian", "gmm", "categorical", "linear_regression")
    assert set(first) == {
        "report.md",
        "index.html",
        "lineage.md",
        # the "gaussians" group shows exactly the Gaussian runs: no second figure of them
        *(f"figures/regimes_{f}.png" for f in families if f != "gaussian"),
        "figures/compare_gaussians.png",
        *(f"trends/{f}.csv" for f in families),
        *(f"metrics/{run}.json" for run in RUNS),
    }
    for name, data in first.items():
        if name.endswith(".png"):
            assert data.startswith(PNG_MAGIC)
    text = path.read_text()
    rows = {
        line.split(" | ")[0].strip("| `"): line
        for line in text.splitlines()
        if line.startswith("| `")
    }
    assert set(rows) == set(RUNS)
    keys = {
        "gaussian": ["var_trace", "w2_sq"],
        "gmm": ["l2_density", "test_nll"],
        "categorical": ["gini_impurity", "support_size"],
        "linear_regression": ["excess_risk"],
    }
    for run, frame in frames.items():
        settings = RUNS[run]
        row = rows[run]
        assert f"| {settings.regime} | {N} |" in row
        for metric in keys[settings.family]:  # each key metric's figure file, linked
            assert f"[{metric}](../results/{run}/figures/metric_{metric}.png)" in row
        for metric in keys[settings.family]:
            final = frame[metric].iloc[-1]
            assert _cell(final) in row, (run, metric)
            if settings.chains > 1:
                se = 0.2 / math.sqrt(settings.chains)
                assert f"(ens. {_cell(final * 1.1)} ± {_cell(se)})" in row
    assert "| `gauss_mix` | mix | 60 | 0.5 |" in text
    assert "![gaussians](figures/compare_gaussians.png)" in text


def test_report_trends_and_run_summaries_for_dvc(tree):
    """trends/<family>.csv (dvc plots, band template) and metrics/<run>.json (dvc
    metrics show) carry the numbers of metrics.csv and ensemble.csv."""
    import json

    root, frames = tree
    report = write_report(RUNS, COMPARE, root).parent
    trend = pd.read_csv(report / "trends" / "gaussian.csv")
    assert list(trend.columns) == ["generation", "run", "lower", "upper", "median", "var_trace"]
    assert sorted(set(trend["run"])) == sorted(r for r, s in RUNS.items() if s.family == "gaussian")
    ens = trend[trend["run"] == "gauss_replace"]  # 50 chains: mean 1.1 x, median 0.9 x, std 0.2
    chain = frames["gauss_replace"]["var_trace"].to_numpy()
    np.testing.assert_allclose(ens["var_trace"], chain * 1.1)
    np.testing.assert_allclose(ens["median"], chain * 0.9)
    np.testing.assert_allclose(ens["lower"], chain * 1.1 - 0.2)
    np.testing.assert_allclose(ens["upper"], chain * 1.1 + 0.2)
    single = trend[trend["run"] == "gauss_mix"]  # one chain: its value in all four columns
    for column in ("lower", "upper", "median", "var_trace"):
        np.testing.assert_allclose(single[column], frames["gauss_mix"]["var_trace"])
    assert list(single["generation"]) == list(range(GENERATIONS))

    summary = json.loads((report / "metrics" / "gauss_replace.json").read_text())
    assert summary["metric"] == "var_trace" and summary["generations"] == GENERATIONS
    assert summary["first"] == pytest.approx(chain[0] * 1.1)
    assert summary["last"] == pytest.approx(chain[-1] * 1.1)
    assert summary["ratio"] == pytest.approx(chain[-1] / chain[0])
    assert summary["human_share"] == 0.0
    lin = json.loads((report / "metrics" / "lin_replace.json").read_text())
    assert lin["metric"] == "excess_risk"
    assert lin["last"] == pytest.approx(frames["lin_replace"]["excess_risk"].iloc[-1])


def test_a_run_and_its_replicates_are_reported_as_one_setting_across_seeds(tmp_path):
    """runs.<id>.replicate_of: the findings, the DVC trend and the figures take the mean
    and spread across seeds; the tables and metrics/<run>.json keep every chain."""
    import json

    base = RUNS["lin_replace"]
    runs = {"lin_replace": base, "lin_s1": dataclasses.replace(base, seed=1)}
    runs["lin_s2"] = dataclasses.replace(base, seed=2)
    _human(tmp_path, ["lin"])
    frames = {r: _build_run(tmp_path, r, s, seed=7 + i) for i, (r, s) in enumerate(runs.items())}
    report = write_report(
        runs, {}, tmp_path, replicates={"lin_replace": ["lin_s1", "lin_s2"]}
    ).parent
    values = np.stack([f["excess_risk"].to_numpy() for f in frames.values()], axis=1)
    assert not np.allclose(values[:, 0], values[:, 1])  # three different chains

    trend = pd.read_csv(report / "trends" / "linear_regression.csv")
    assert set(trend["run"]) == {"lin_replace"}  # one setting, drawn once
    mean, sd = values.mean(axis=1), values.std(axis=1, ddof=1)
    np.testing.assert_allclose(trend["excess_risk"], mean)
    np.testing.assert_allclose(trend["lower"], mean - sd)
    np.testing.assert_allclose(trend["upper"], mean + sd)
    np.testing.assert_allclose(trend["median"], np.median(values, axis=1))

    text = (report / "report.md").read_text()
    factors = values[-1] / values[0]
    assert (
        f"{mean[0]:.4g} → {mean[-1]:.4g} in {GENERATIONS - 1} generations "
        f"(×{mean[-1] / mean[0]:.3g}), mean of 3 seeds "
        f"(×{factors.min():.3g} to ×{factors.max():.3g} across seeds)"
    ) in text
    for run in runs:  # every chain keeps its table row and its DVC metrics file
        assert f"| `{run}` |" in text
        assert json.loads((report / "metrics" / f"{run}.json").read_text())["generations"] == 4
    assert (report / "figures" / "regimes_linear_regression.png").read_bytes()[:8] == PNG_MAGIC


def test_seeds_of_a_log_axis_metric_are_summarised_in_logs():
    """A perplexity that one seed multiplies thirtyfold: across seeds, a metric the
    family draws on a log axis takes the geometric mean and a band ×/÷ exp(2 s.e. of
    the log) in the findings, the figures and the DVC trend (±1 s.d. of the log); a
    metric on a linear axis keeps the arithmetic mean."""
    import io as stdio

    from modelcollapse.report import (
        RunResults,
        SeedGroup,
        comparison_figure,
        finding,
        trend_table,
    )

    settings = dataclasses.replace(RUNS["lin_replace"], family="lm")
    seeds = np.array([[100.0, 200.0, 400.0], [100.0, 300.0, 12000.0], [100.0, 250.0, 1000.0]])
    diversity = np.array([[0.5, 0.4, 0.3], [0.5, 0.3, 0.1], [0.5, 0.35, 0.2]])
    members = []
    for i, (perplexity, distinct) in enumerate(zip(seeds, diversity, strict=True)):
        member = object.__new__(RunResults)
        member.run, member.settings, member.chains, member.ensemble = f"lm_s{i}", settings, 1, None
        member.metrics = pd.DataFrame(
            {"generation": [0, 1, 2], "test_perplexity": perplexity, "distinct_2": distinct}
        )
        members.append(member)
    group = SeedGroup(members)
    assert "test_perplexity" in group.geometric and "distinct_2" not in group.geometric

    logs = np.log(seeds)
    geo, sd = np.exp(logs.mean(axis=0)), logs.std(axis=0, ddof=1)
    _, values, _ = group.curve("test_perplexity")
    np.testing.assert_allclose(values, geo)  # 400, 12000, 1000 -> 1442, not 4467
    lower, upper = group.band("test_perplexity")
    np.testing.assert_allclose(lower, geo * np.exp(-2 * sd / np.sqrt(3)))
    np.testing.assert_allclose(upper, geo * np.exp(2 * sd / np.sqrt(3)))
    _, linear, _ = group.curve("distinct_2")
    np.testing.assert_allclose(linear, diversity.mean(axis=0))
    spread = 2 * diversity.std(axis=0, ddof=1) / np.sqrt(3)
    np.testing.assert_allclose(group.band("distinct_2")[0], diversity.mean(axis=0) - spread)

    trend = pd.read_csv(stdio.StringIO(trend_table("test_perplexity", [group])))
    np.testing.assert_allclose(trend["test_perplexity"], geo)
    np.testing.assert_allclose(trend["lower"], geo * np.exp(-sd))
    np.testing.assert_allclose(trend["upper"], geo * np.exp(sd))
    text = finding(group)
    assert f"100 → {geo[-1]:.4g} in 2 generations (×{geo[-1] / 100:.3g})" in text
    assert "geometric mean of 3 seeds (×4 to ×120 across seeds)" in text
    fig = comparison_figure("lm", [group], ["test_perplexity", "distinct_2"])
    assert fig._suptitle.get_text().endswith(
        "across seeds on a log axis: geometric mean ×/÷ 2 s.e."
    )
    plt.close(fig)


def test_comparison_marks_identical_curves_and_draws_medians_of_median_metrics(tree):
    """Two runs with the same numbers (mix and fresh can be) stay distinguishable: own
    marker shapes, staggered, and the legend says which repeats which. The Gaussian
    variance, whose collapse is about the median, gets each ensemble's median; axes
    carry the family's labels."""
    import copy

    from modelcollapse.report import RunResults, comparison_figure

    root, _ = tree
    first = RunResults("gauss_replace", RUNS["gauss_replace"], root)
    twin = copy.copy(first)
    twin.run = "gauss_twin"
    fig = comparison_figure("twins", [first, twin], ["var_trace", "w2_sq"])
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[1].startswith("gauss_twin") and legend[1].endswith("(= gauss_replace)")
    assert "(=" not in legend[0]
    var_ax, w2_ax = fig.axes[:2]
    assert var_ax.get_ylabel() == "variance, tr Σ̂ (truth: tr Σ)"
    assert w2_ax.get_ylabel() == "squared Wasserstein-2 distance to the truth"
    markers = [line.get_marker() for line in var_ax.get_lines() if line.get_marker() != "None"]
    assert markers[:2] == ["o", "s"]
    offsets = [line.get_markevery()[0] for line in var_ax.get_lines()[::2]]
    assert offsets[0] != offsets[1]
    # each run: mean (solid, markers) and median (dashed) on var_trace; w2_sq: mean only
    assert len(var_ax.get_lines()) == 4 and len(w2_ax.get_lines()) == 2
    median = first.ensemble[first.ensemble["metric"] == "var_trace"]["median"].to_numpy()
    np.testing.assert_allclose(var_ax.get_lines()[1].get_ydata(), median)
    assert fig._suptitle.get_text().endswith(
        "solid: mean ± 2 s.e. over K chains; long dashes: median"
    )
    plt.close(fig)


def test_report_rejects_an_unknown_run_in_a_comparison(tree):
    root, _ = tree
    with pytest.raises(ValueError, match="nope"):
        write_report(RUNS, {"bad": ["gauss_mix", "nope"]}, root)


# ----------------------------------------------------------------- the HTML report


def _html_links(page: Path) -> list[str]:
    import re

    text = page.read_text(encoding="utf-8")
    return re.findall(r'(?:src|href)="([^"#][^"]*)"', text)


def test_html_report_has_findings_each_figure_once_and_working_links(tree, plotted):
    root, frames = tree
    report = write_report(RUNS, COMPARE, root).parent
    page = report / "index.html"
    text = page.read_text(encoding="utf-8")
    links = _html_links(page)
    assert links, "no links"
    for link in links:
        assert (report / link).exists(), f"broken link {link}"
    run_figures = [link for link in links if link.startswith("../results/")]
    assert len(run_figures) == sum(len(files) for files in plotted.values())  # every one
    images = [link for link in links if link.endswith(".png") and link.startswith("figures/")]
    assert len(images) == len(set(images))  # each comparison figure once
    assert {p.name for p in (report / "figures").iterdir()} == {Path(i).name for i in images}
    # the findings, in numbers: gauss_replace's variance from generation 0 to the last
    ens = frames["gauss_replace"]["var_trace"].to_numpy() * 1.1  # the fixture's ensemble
    first, last = ens[0], ens[-1]
    expected = f"{first:.4g} → {last:.4g} in {GENERATIONS - 1} generations (×{last / first:.3g})"
    assert expected in text
    md = (report / "report.md").read_text(encoding="utf-8")
    assert expected in md


def _blue_pixels(png: Path) -> int:
    """Pixels of matplotlib's first colour (tab:blue, #1f77b4): only a figure has them."""
    import matplotlib.image

    rgb = (matplotlib.image.imread(png)[..., :3] * 255).round().astype(int)
    return int((np.abs(rgb - [31, 119, 180]).max(axis=-1) <= 12).sum())


def _browse(page: Path, shot: Path) -> str:
    """Load ``page`` in headless Chromium; the screenshot at ``shot``, the browser log."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail("chromium is not installed: the README's test command installs it")
    out = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--enable-logging=stderr", "--v=0", "--window-size=1280,3000",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0 and shot.is_file(), out.stderr[-2000:]
    return out.stdout + out.stderr


def test_html_report_in_a_real_browser_shows_its_figures(tree, tmp_path):
    """Chromium loads the page without a console message and draws its figures (the
    screenshot's pixels); with the figures gone, the same check finds none."""
    import shutil

    root, _ = tree
    report = write_report(RUNS, COMPARE, root).parent
    copy = Path(shutil.copytree(report, tmp_path / "reports"))
    log = _browse(copy / "index.html", tmp_path / "page.png")
    assert "CONSOLE" not in log, [line for line in log.splitlines() if "CONSOLE" in line]
    shown = _blue_pixels(tmp_path / "page.png")
    assert shown > 1000, shown
    shutil.rmtree(copy / "figures")  # the negative control: the same page, no figures
    _browse(copy / "index.html", tmp_path / "bare.png")
    assert _blue_pixels(tmp_path / "bare.png") < shown / 50
