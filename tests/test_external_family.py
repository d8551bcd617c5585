"""A family added from outside the package, end to end through real Snakemake.

tests/external_family/ is a separate Python package (``mc_poisson``: a Poisson family,
its model, its schema file and its closed form) that registers itself through the
``modelcollapse.families`` entry-point group. The test installs it with pip into a
directory of its own, puts that directory on PYTHONPATH, and runs a small study of it
with the repository's Snakefile: the README's "Adding a family" promise, kept.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from workflow_utils import ROOT, make_workflow

pytestmark = pytest.mark.slow

RATE, N, GENERATIONS, CHAINS = 4.0, 200, 5, 4000
PARAMS = {
    "defaults": {"samples_per_generation": N, "seed": 0},
    "human": {
        "counts": {"family": "poisson", "truth": {"rate": RATE}, "pool_size": 3000, "seed": 1},
    },
    "runs": {
        "pois_replace": {
            "family": "poisson",
            "human": "counts",
            "generations": GENERATIONS,
            "chains": CHAINS,
        },
        "pois_mix": {
            "family": "poisson",
            "human": "counts",
            "generations": 3,
            "regime": "mix",
            "real_fraction": 0.5,
        },
    },
    "report": {"compare": {"poisson": ["pois_replace", "pois_mix"]}},
}


def run(cmd: list[str], cwd: Path, env: dict[str, str], check: bool = True):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The external package, installed by pip into a directory of its own."""
    tmp = tmp_path_factory.mktemp("external")
    source = shutil.copytree(ROOT / "tests" / "external_family", tmp / "source")
    target = tmp / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    pip += ["--no-build-isolation", "--no-index", "--target", str(target), str(source)]
    run(pip, tmp, dict(os.environ))
    assert (target / "mc_poisson" / "poisson.yaml").is_file()
    assert list(target.glob("mc_poisson-*.dist-info/entry_points.txt"))
    return target


@pytest.fixture(scope="module")
def env(site) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }


@pytest.fixture(scope="module")
def study(tmp_path_factory, env) -> Path:
    wf = make_workflow(tmp_path_factory.mktemp("poisson"), PARAMS)
    run([sys.executable, "-m", "snakemake", "--cores", "2"], wf, env)
    return wf


def test_without_the_package_the_family_is_unknown(tmp_path):
    wf = make_workflow(tmp_path / "wf", PARAMS)
    out = run([sys.executable, "-m", "snakemake", "-n"], wf, dict(os.environ), check=False)
    assert out.returncode != 0
    assert "human.counts.family: unknown family 'poisson'" in out.stdout + out.stderr


def test_the_external_family_runs_every_step(study, env):
    for run_id, spec in PARAMS["runs"].items():
        metrics = pd.read_csv(study / "results" / run_id / "metrics.csv")
        assert metrics["generation"].tolist() == list(range(spec["generations"]))
        assert {"rate", "rate_sq_error", "train_rows"} <= set(metrics.columns)
        model = json.loads((study / "data/runs" / run_id / "gen_0001/model.json").read_text())
        assert model["family"] == "poisson" and model["extra"]["settings"]["family"] == "poisson"
        figures = study / "results" / run_id / "figures"
        assert (figures / "metric_rate_sq_error.png").stat().st_size > 10_000
    report = (study / "reports" / "report.md").read_text()
    assert "## poisson" in report and "| rate_sq_error |" in report.replace(" figures |", " |")
    assert (study / "reports" / "figures" / "compare_poisson.png").is_file()
    verify = [sys.executable, "-m", "modelcollapse", "lineage", "verify"]
    assert "lineage verified: every check holds" in run(verify, study, env).stdout
    again = run([sys.executable, "-m", "snakemake", "-n"], study, env)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_the_ensemble_follows_the_external_closed_form(study):
    """Replace: E[(rate_g - rate)^2] = (g + 1) rate / N, within 4 standard errors."""
    frame = pd.read_csv(study / "results" / "pois_replace" / "ensemble.csv")
    errors = frame[frame["metric"] == "rate_sq_error"].set_index("generation")
    assert len(errors) == GENERATIONS
    for g, row in errors.iterrows():
        expected = (g + 1) * RATE / N
        assert abs(row["mean"] - expected) < 4 * row["std"] / math.sqrt(CHAINS), (g, row)


def test_an_edit_to_the_external_module_reruns_its_steps(study, site, env):
    module = site / "mc_poisson" / "family.py"
    original = module.read_text()
    try:
        module.write_text(original + "\n# a comment changes no fingerprint\n")
        quiet = run([sys.executable, "-m", "snakemake", "-n"], study, env)
        assert "Nothing to be done" in quiet.stdout + quiet.stderr
        module.write_text(original.replace('COLUMN = "count"', 'COLUMN = "count"  # noqa\nX = 1'))
        dry = run([sys.executable, "-m", "snakemake", "-n"], study, env).stdout
        assert "rule generation:" in dry and "pois_replace" in dry and "pois_mix" in dry
    finally:
        module.write_text(original)
