"""DVC round trip with the real DVC and a real local remote.

repro -> push -> fresh clone -> pull; the pulled artifacts are byte-identical to
what Snakemake builds, a single generation's file can be pulled on its own, and
Snakemake finds nothing to do on pulled artifacts.
"""

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from workflow_utils import (
    TINY_PARAMS,
    dvc,
    dvc_repo,
    git,
    root_of,
    root_step,
    run,
    run_steps,
    scheduled,
    snakemake,
    tree_md5s,
    verify_ok,
)

from modelcollapse.config import validate

pytestmark = pytest.mark.slow

# The neural families ride along at their smallest: their checkpoints and samples
# must survive repro -> push -> pull byte for byte like the statistical ones.
NEURAL_HUMAN = {
    "plays": {
        "family": "lm",
        "seed": 0,
        "data": {"vocab_size": 300, "max_train_blocks": 200, "max_test_blocks": 50},
    },
    "digits": {"family": "vae", "seed": 0, "data": {"per_class": 30}},
}
NEURAL_RUNS = {
    "lm_mix": {
        "family": "lm",
        "human": "plays",
        "regime": "mix",
        "real_fraction": 0.1,
        "generations": 2,
        "options": {"size": "tiny", "steps": 10, "batch_size": 8, "threads": 1},
    },
    "vae_replace": {
        "family": "vae",
        "human": "digits",
        "generations": 2,
        "samples_per_generation": 100,
        "options": {"size": "tiny", "epochs": 1, "batch_size": 32, "threads": 1},
    },
}
PARAMS = {
    **TINY_PARAMS,
    "human": {**TINY_PARAMS["human"], **NEURAL_HUMAN},
    "runs": {
        **{k: TINY_PARAMS["runs"][k] for k in ("g_replace", "g_acc", "cat")},
        **NEURAL_RUNS,
    },
    "report": {"compare": {"gauss": ["g_replace", "g_acc"]}},
}
OUTPUT_DIRS = ("data", "results", "reports")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    base = tmp_path_factory.mktemp("dvc")
    repo = dvc_repo(base / "origin", PARAMS, remote=base / "remote")
    dvc(repo, "repro")
    dvc(repo, "push")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tiny study")
    return base, repo


def test_repro_matches_snakemake_byte_for_byte_and_in_dvc_lock(repo, tmp_path):
    """Snakemake in a DVC repository builds the same bytes as `dvc repro` and records
    them in dvc.lock as `dvc repro` does: `dvc status` is clean, no extra command."""
    _, origin = repo
    wf = dvc_repo(tmp_path / "smk", PARAMS)
    out = snakemake(wf, "--cores", "2")
    assert "dvc.lock: committed" in out.stderr
    from_dvc = tree_md5s(origin, *OUTPUT_DIRS)
    from_snakemake = tree_md5s(wf, *OUTPUT_DIRS)
    assert from_dvc.keys() == from_snakemake.keys()
    different = [k for k in from_dvc if from_dvc[k] != from_snakemake[k]]
    assert not different, different
    # The ledgers agree on everything deterministic (the commits of two repositories
    # differ: a record's circumstances are not part of its content hash).
    records = sorted(p.relative_to(origin) for p in (origin / "lineage").rglob("gen_*.json"))
    assert records == sorted(p.relative_to(wf) for p in (wf / "lineage").rglob("gen_*.json"))
    for rel in records:
        a, b = (json.loads((d / rel).read_text()) for d in (origin, wf))
        assert a["content_hash"] == b["content_hash"], rel
    # The heads digest content hashes only: byte-identical under both tools.
    heads = sorted(p.relative_to(origin) for p in (origin / "lineage").rglob("head.json"))
    assert len(heads) == len(PARAMS["runs"])
    for rel in heads:
        assert (origin / rel).read_bytes() == (wf / rel).read_bytes(), rel
    lock = yaml.safe_load((wf / "dvc.lock").read_text())
    assert lock == yaml.safe_load((origin / "dvc.lock").read_text())
    assert "Data and pipelines are up to date" in dvc(wf, "status").stdout


def test_noop_repro_and_status(repo):
    _, origin = repo
    assert "Data and pipelines are up to date" in dvc(origin, "status").stdout
    out = dvc(origin, "repro")
    assert "didn't change, skipping" in out.stdout + out.stderr
    assert "Running stage" not in out.stdout


def test_metrics_and_plots_show_one_row_per_run_and_a_band_chart_per_family(repo):
    """`dvc metrics show` reads the report's short rows; `dvc plots show` draws each
    family's trend with the band template and the report's PNGs as images."""
    _, origin = repo
    (workspace,) = json.loads(dvc(origin, "metrics", "show", "--json").stdout).values()
    shown = workspace["data"]
    study = validate(PARAMS, source="test")
    rows = {Path(path).stem: entry["data"] for path, entry in shown.items()}
    assert set(rows) == set(study.runs)
    for run_id, row in rows.items():
        assert set(row) >= {"metric", "generations", "first", "last"}, run_id
        assert row["generations"] == study.run(run_id).generations
    assert rows["g_replace"]["metric"] == "var_trace"
    assert rows["lm_mix"]["human_share"] == pytest.approx(0.1, abs=0.02)

    plots = json.loads(dvc(origin, "plots", "show", "--json").stdout)
    assert not plots.get("errors"), plots.get("errors")
    trends = {Path(k).stem: v[0] for k, v in plots["data"].items() if "trends" in k}
    families = {s.family for s in study.runs.values()}
    assert set(trends) == families
    chart = trends["gaussian"]["content"]
    marks = [layer["mark"]["type"] for layer in chart["layer"]]
    assert marks == ["area", "line", "line"]  # the band, the median, the mean
    values = chart["data"]["values"]
    assert {v["run"] for v in values} == {"g_replace", "g_acc"}
    assert all(float(v["lower"]) <= float(v["var_trace"]) <= float(v["upper"]) for v in values)
    images = [k for k, v in plots["data"].items() if v and v[0]["type"] == "image"]
    assert images and all(k.startswith("reports/figures/") for k in images)


def test_lock_records_the_md5_of_each_stage_output(repo):
    _, origin = repo
    lock = yaml.safe_load((origin / "dvc.lock").read_text())
    outs = {o["path"]: o for o in lock["stages"]["chain@g_replace"]["outs"]}
    assert outs["data/runs/g_replace"]["md5"].endswith(".dir")
    assert outs["data/runs/g_replace"]["nfiles"] == 3 * 5  # generation 0 is its root's
    summary = json.loads((origin / "results/g_replace/summary.json").read_text())
    assert summary["generation"] == 3


def test_fresh_clone_pulls_everything_and_snakemake_has_nothing_to_do(repo):
    base, origin = repo
    clone = base / "clone_all"
    run(["git", "clone", "-q", str(origin), str(clone)], base)
    assert tree_md5s(clone, *OUTPUT_DIRS) == {}, "artifacts are never committed to git"
    dvc(clone, "pull")
    assert tree_md5s(clone, *OUTPUT_DIRS) == tree_md5s(origin, *OUTPUT_DIRS)
    out = snakemake(clone, "--cores", "1", "-n")
    assert "Nothing to be done" in out.stdout + out.stderr, out.stdout
    assert "Data and pipelines are up to date" in dvc(clone, "status").stdout
    verify_ok(clone)
    # The settings the artifacts were built with travel with them: a change made in
    # the clone is noticed (Snakemake's own metadata never left the origin).
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["runs"]["g_replace"]["options"] = {"sample_scale": 0.9}
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # (another sample_scale samples generation 0 differently: a root of its own)
    expected = run_steps("g_replace", range(1, 4), "metrics", "ensemble", "figures")
    expected |= {root_step(params, "g_replace"), ("report", None, None)}
    assert scheduled(clone) == expected
    status = run([sys.executable, "-m", "modelcollapse", "status"], clone).stdout
    assert f"generation 0 ({root_of(params, 'g_replace')}, of run g_replace): missing" in status
    assert (
        "run g_replace: generations 1-3: stale (settings changed: options.sample_scale)" in status
    )


def test_a_partial_pull_is_noticed_and_rebuilt(repo, tmp_path):
    """A remote that lacks some objects: what `dvc pull` could not bring is scheduled
    (and only that), not reported as up to date."""
    base, origin = repo
    remote = tmp_path / "remote"
    shutil.copytree(base / "remote", remote)
    lock = yaml.safe_load((origin / "dvc.lock").read_text())
    (out,) = [o for o in lock["stages"]["chain@g_acc"]["outs"] if o["path"] == "data/runs/g_acc"]
    value = out["md5"].removesuffix(".dir")
    listing = json.loads((remote / "files/md5" / value[:2] / (value[2:] + ".dir")).read_text())
    (lost,) = [e["md5"] for e in listing if e["relpath"] == "gen_0001/samples.parquet"]
    (remote / "files/md5" / lost[:2] / lost[2:]).unlink()
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    dvc(clone, "remote", "modify", "--local", "local", "url", str(remote))
    assert dvc(clone, "pull", check=False).returncode != 0  # fetches what it can
    assert dvc(clone, "checkout", check=False).returncode != 0  # checks out what it can
    assert (clone / "data/runs/g_replace").is_dir() and not (clone / "data/runs/g_acc").exists()
    jobs = scheduled(clone)
    assert ("generation", "g_acc", 1) in jobs and ("metrics", "g_acc", None) in jobs
    assert {name for _, name, _ in jobs} == {"g_acc", None}  # that run and the report


def test_pull_a_single_generation_file(repo):
    base, origin = repo
    clone = base / "clone_one"
    run(["git", "clone", "-q", str(origin), str(clone)], base)
    target = "data/runs/g_acc/gen_0001/model.safetensors"
    dvc(clone, "pull", target)
    assert (clone / target).read_bytes() == (origin / target).read_bytes()
    pulled = [p for p in (clone / "data").rglob("*") if p.is_file() and p.name != ".gitignore"]
    assert [p.relative_to(clone).as_posix() for p in pulled] == [target]
