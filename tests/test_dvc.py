"""DVC round trip with the real DVC and a real local remote.

repro -> push -> fresh clone -> pull; the pulled artifacts are byte-identical to
what Snakemake builds, a single generation's file can be pulled on its own, and
Snakemake finds nothing to do on pulled artifacts.
"""

import json
import shutil

import pytest
import yaml
from workflow_utils import ROOT, TINY_PARAMS, dvc, make_workflow, run, snakemake, tree_md5s

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


def git(cwd, *args):
    return run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    base = tmp_path_factory.mktemp("dvc")
    repo = make_workflow(base / "origin", PARAMS)
    for name in (".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    git(repo, "init", "-q", "-b", "main")
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    dvc(repo, "remote", "add", "-d", "local", str(base / "remote"))
    dvc(repo, "repro")
    dvc(repo, "push")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tiny study")
    return base, repo


def dvc_repo(path, params=PARAMS):
    """A copy of the workflow as a git + DVC repository (no remote)."""
    wf = make_workflow(path, params)
    for name in (".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, wf / name)
    git(wf, "init", "-q", "-b", "main")
    dvc(wf, "init", "-q")
    dvc(wf, "config", "core.analytics", "false")
    return wf


def test_repro_matches_snakemake_byte_for_byte_and_in_dvc_lock(repo, tmp_path):
    """Snakemake in a DVC repository builds the same bytes as `dvc repro` and records
    them in dvc.lock as `dvc repro` does: `dvc status` is clean, no extra command."""
    _, origin = repo
    wf = dvc_repo(tmp_path / "smk")
    out = snakemake(wf, "--cores", "2")
    assert "dvc.lock: committed" in out.stderr
    from_dvc = tree_md5s(origin, *OUTPUT_DIRS, "lineage")
    from_snakemake = tree_md5s(wf, *OUTPUT_DIRS, "lineage")
    assert from_dvc.keys() == from_snakemake.keys()
    different = [k for k in from_dvc if from_dvc[k] != from_snakemake[k]]
    assert not different, different
    lock = yaml.safe_load((wf / "dvc.lock").read_text())
    assert lock == yaml.safe_load((origin / "dvc.lock").read_text())
    assert "Data and pipelines are up to date" in dvc(wf, "status").stdout


def test_noop_repro_and_status(repo):
    _, origin = repo
    assert "Data and pipelines are up to date" in dvc(origin, "status").stdout
    out = dvc(origin, "repro")
    assert "didn't change, skipping" in out.stdout + out.stderr
    assert "Running stage" not in out.stdout


def test_lock_records_the_md5_of_each_stage_output(repo):
    _, origin = repo
    lock = yaml.safe_load((origin / "dvc.lock").read_text())
    outs = {o["path"]: o for o in lock["stages"]["chain@g_replace"]["outs"]}
    assert outs["data/runs/g_replace"]["md5"].endswith(".dir")
    assert outs["data/runs/g_replace"]["nfiles"] == 4 * 5
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


def test_pull_a_single_generation_file(repo):
    base, origin = repo
    clone = base / "clone_one"
    run(["git", "clone", "-q", str(origin), str(clone)], base)
    target = "data/runs/g_acc/gen_0001/model.safetensors"
    dvc(clone, "pull", target)
    assert (clone / target).read_bytes() == (origin / target).read_bytes()
    pulled = [p for p in (clone / "data").rglob("*") if p.is_file() and p.name != ".gitignore"]
    assert [p.relative_to(clone).as_posix() for p in pulled] == [target]
