"""Incremental rebuilds, with the real Snakemake and DVC: each kind of change reruns
exactly what it affects, under both tools, and `lineage verify` passes afterwards.

A small study is built once (Snakemake, in a git + DVC repository); each test edits a
copy of it and asserts the exact set of jobs scheduled (``snakemake -n``), of stages
`dvc repro` runs, and of generations whose ledger record was rewritten.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from workflow_utils import (
    TINY_PARAMS,
    dvc,
    dvc_changed_stages,
    dvc_repo,
    dvc_stages_run,
    git,
    ledger_mtimes,
    rebuilt_generations,
    run_steps,
    scheduled,
    snakemake,
    tree_md5s,
    verify_ok,
)

pytestmark = pytest.mark.slow

PARAMS = {
    "defaults": {"samples_per_generation": 30, "seed": 7, "chains": 1},
    "human": {k: TINY_PARAMS["human"][k] for k in ("g1", "mix2", "cat")},
    "runs": {
        "g_replace": {"family": "gaussian", "human": "g1", "generations": 4, "chains": 40},
        "g_acc": {"family": "gaussian", "human": "g1", "generations": 3, "regime": "accumulate"},
        "gmm": {
            "family": "gmm",
            "human": "mix2",
            "generations": 2,
            "samples_per_generation": 200,
            "options": {"max_iter": 100},
        },
        "cat": {"family": "categorical", "human": "cat", "generations": 3},
    },
    "report": {"compare": {"gauss": ["g_replace", "g_acc"]}},
}
RUN_STEPS = ("metrics", "ensemble", "figures")
REPORT = {("report", None, None)}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    wf = dvc_repo(tmp_path_factory.mktemp("rebuilds") / "study", PARAMS)
    out = snakemake(wf, "--cores", "2")
    assert "dvc.lock: committed" in out.stderr
    git(wf, "add", "-A")
    git(wf, "commit", "-q", "-m", "study")
    return wf


@pytest.fixture
def study(built, tmp_path) -> Path:
    """A private copy of the built study (mtimes kept) that a test may edit."""
    return Path(shutil.copytree(built, tmp_path / "study", symlinks=True))


def edit_params(wf: Path, run_id: str, **changes) -> None:
    params = yaml.safe_load((wf / "params.yaml").read_text())
    params["runs"][run_id].update(changes)
    (wf / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def edit_module(wf: Path, module: str, text: str) -> None:
    path = wf / "src" / "modelcollapse" / module
    path.write_text(path.read_text() + text)


def snakemake_rebuilds(wf: Path, expected: set[tuple]) -> None:
    """`snakemake -n` schedules exactly ``expected``; one run rebuilds exactly its
    generations; afterwards nothing is left to do, dvc.lock is current, verify passes."""
    assert scheduled(wf) == expected
    before = ledger_mtimes(wf)
    snakemake(wf, "--cores", "2")
    gens = {job for job in expected if job[0] == "generation"}
    assert rebuilt_generations(before, ledger_mtimes(wf)) == gens
    assert scheduled(wf) == set()
    assert dvc_changed_stages(wf) == set()
    verify_ok(wf)


def dvc_rebuilds(wf: Path, stages: set[str], gens: set[tuple]) -> None:
    """`dvc repro` runs exactly ``stages`` (after the keys stage, the only one `dvc
    status` can name before it has run) and rebuilds exactly ``gens``; then `dvc status`
    is clean and Snakemake has nothing to do."""
    assert dvc_changed_stages(wf) == {"keys"}
    before = ledger_mtimes(wf)
    out = dvc(wf, "repro")
    assert dvc_stages_run(out.stdout) == stages | {"keys"}
    assert rebuilt_generations(before, ledger_mtimes(wf)) == gens
    assert dvc_changed_stages(wf) == set()
    assert scheduled(wf) == set()
    verify_ok(wf)


def stages_of(run_id: str, *steps: str) -> set[str]:
    return {f"{s}@{run_id}" for s in steps}


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize("tool", ["snakemake", "dvc"])
def test_a_changed_seed_rebuilds_its_whole_run_in_one_invocation(study, tool):
    edit_params(study, "g_replace", seed=8)
    expected = run_steps("g_replace", range(4), *RUN_STEPS) | REPORT
    if tool == "snakemake":
        snakemake_rebuilds(study, expected)
    else:
        dvc_rebuilds(
            study,
            stages_of("g_replace", "chain", "ensemble", "figures") | {"report"},
            run_steps("g_replace", range(4)),
        )


def test_a_human_source_change_rebuilds_the_runs_on_it_only(study):
    params = yaml.safe_load((study / "params.yaml").read_text())
    params["human"]["cat"]["truth"]["zipf_exponent"] = 1.5
    (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    snakemake_rebuilds(
        study, {("human", "cat", None)} | run_steps("cat", range(3), *RUN_STEPS) | REPORT
    )


# ---------------------------------------------------------------------- code


@pytest.mark.parametrize("tool", ["snakemake", "dvc"])
def test_editing_a_family_reruns_exactly_its_runs(study, tool):
    # The family's module draws its human data from the truth too: that is rebuilt.
    edit_module(study, "families/gmm.py", "\n\nEDITED = True\n")
    if tool == "snakemake":
        human = {("human", "mix2", None)}
        snakemake_rebuilds(study, human | run_steps("gmm", range(2), *RUN_STEPS) | REPORT)
    else:
        stages = stages_of("gmm", "chain", "ensemble", "figures") | {"human@mix2", "report"}
        dvc_rebuilds(study, stages, run_steps("gmm", range(2)))


@pytest.mark.parametrize("tool", ["snakemake", "dvc"])
def test_editing_the_plotting_code_reruns_figures_and_report_only(study, tool):
    # A comment or docstring is not code: nothing reruns.
    edit_module(study, "plots.py", "\n# a comment on the figures\n")
    assert scheduled(study) == set()
    out = dvc(study, "repro")
    assert dvc_stages_run(out.stdout) == {"keys"}  # it writes the same keys: nothing else
    edit_module(study, "plots.py", "\n\nEDITED = True\n")
    figures = {("figures", r, None) for r in PARAMS["runs"]}
    if tool == "snakemake":
        snakemake_rebuilds(study, figures | REPORT)
    else:
        dvc_rebuilds(study, {f"figures@{r}" for r in PARAMS["runs"]} | {"report"}, set())


# ----------------------------------------------------------------- extension


@pytest.mark.parametrize("tool", ["snakemake", "dvc"])
def test_extending_a_run_keeps_every_finished_generation(study, tool):
    finished = tree_md5s(study, "data/runs/g_replace")
    mtimes = {p: (study / p).stat().st_mtime_ns for p in finished}
    edit_params(study, "g_replace", generations=6)
    if tool == "snakemake":
        snakemake_rebuilds(study, run_steps("g_replace", [4, 5], *RUN_STEPS) | REPORT)
    else:
        dvc_rebuilds(
            study,
            stages_of("g_replace", "chain", "ensemble", "figures") | {"report"},
            run_steps("g_replace", [4, 5]),
        )
    assert {p: tree_md5s(study, "data/runs/g_replace")[p] for p in finished} == finished
    if tool == "snakemake":  # DVC relinks the directory's files: same bytes, new mtimes
        assert {p: (study / p).stat().st_mtime_ns for p in finished} == mtimes
    # More chains: the ensemble only; other snapshots: the figures only.
    edit_params(study, "g_replace", chains=60)
    edit_params(study, "cat", plot_generations=[0, 1])
    if tool == "snakemake":
        expected = {("ensemble", "g_replace", None), ("figures", "g_replace", None)}
        snakemake_rebuilds(study, expected | {("figures", "cat", None)} | REPORT)
    else:
        stages = stages_of("g_replace", "ensemble", "figures") | {"figures@cat", "report"}
        dvc_rebuilds(study, stages, set())


# ------------------------------------------------------- inputs and the ledger


def test_a_missing_artifact_anywhere_in_an_accumulate_chain_is_rebuilt(study):
    before = tree_md5s(study, "data/runs/g_acc")
    (study / "data/runs/g_acc/gen_0000/samples.parquet").unlink()
    shutil.rmtree(study / "data/runs/g_acc/gen_0002")
    target = "data/runs/g_acc/gen_0002/model.safetensors"
    assert scheduled(study, target) == run_steps("g_acc", range(3))
    snakemake(study, "--cores", "1", target)
    assert tree_md5s(study, "data/runs/g_acc") == before  # deterministic: same bytes
    assert scheduled(study) == set()
    verify_ok(study)


def test_rebuilding_a_generation_at_another_commit_keeps_the_chain(study):
    (study / "NOTES.md").write_text("a commit that changes no code\n")
    git(study, "add", "-A")
    git(study, "commit", "-q", "-m", "notes")
    head = git(study, "rev-parse", "HEAD").stdout.strip()
    record = study / "lineage/g_replace/gen_0002.json"
    old = json.loads(record.read_text())
    (study / "data/runs/g_replace/gen_0002/model.safetensors").unlink()
    target = "data/runs/g_replace/gen_0002/model.safetensors"
    assert scheduled(study, target) == {("generation", "g_replace", 2)}
    snakemake(study, "--cores", "1", target)
    new = json.loads(record.read_text())
    assert new["code"]["commit"] == head != old["code"]["commit"]
    assert new["content_hash"] == old["content_hash"]  # the chain holds
    assert scheduled(study) == set()  # generation 3 read the same content
    verify_ok(study)
    assert dvc_changed_stages(study) == set()  # the bytes DVC knows are unchanged


def test_a_failed_rebuild_keeps_the_committed_ledger_record(study):
    record = study / "lineage/cat/gen_0001.json"
    committed = record.read_bytes()
    # A forced rebuild of generation 1 fails: what it trains on is corrupt.
    (study / "data/runs/cat/gen_0000/samples.parquet").write_bytes(b"PAR1 corrupt")
    target = "data/runs/cat/gen_0001/model.json"
    out = snakemake(study, "--cores", "1", "--forcerun", target, target, check=False)
    assert out.returncode != 0
    assert "data/runs/cat/gen_0000/samples.parquet" in (study / "logs/cat/gen_0001.log").read_text()
    assert record.read_bytes() == committed
    assert not list(study.glob("lineage/**/*.tmp"))


# ------------------------------------------------ interruption and concurrency


def test_snakemake_will_not_start_while_dvc_works(study):
    import zc.lockfile

    edit_params(study, "cat", seed=9)
    lock = zc.lockfile.LockFile(str(study / ".dvc/tmp/lock"))  # as `dvc repro` holds it
    try:
        before = tree_md5s(study, "data", "results", "reports", "lineage")
        out = snakemake(study, "--cores", "1", check=False)
        assert out.returncode != 0
        message = "`dvc repro` (or another DVC command or Snakemake run) is working"
        assert message in out.stdout + out.stderr
        assert tree_md5s(study, "data", "results", "reports", "lineage") == before
    finally:
        lock.close()


def test_dvc_cannot_start_under_snakemake_and_a_killed_run_leaves_no_debris(study):
    # A long chain (a GMM generation job takes about half a second): the kill lands while
    # generations remain to be run, `dvc repro`'s refusal having taken a few seconds.
    generations = 60
    edit_params(study, "gmm", samples_per_generation=1500, generations=generations)
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "2"],
        cwd=study,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    log = study / "logs/gmm/gen_0002.log"
    deadline = time.monotonic() + 300
    while not log.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    # Snakemake holds the workflow lock: `dvc repro` refuses and deletes nothing.
    out = dvc(study, "repro", check=False)
    assert out.returncode != 0 and "Unable to acquire lock" in out.stdout + out.stderr
    assert (study / "data/runs/gmm/gen_0001/model.safetensors").exists()
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    outputs = [p for d in ("data", "results", "reports", "lineage") for p in (study / d).rglob("*")]
    assert not [p for p in outputs if p.name.endswith((".tmp", ".old"))]
    # The interrupted generation and everything after it are rebuilt, nothing else.
    jobs = scheduled(study)
    assert {name for _, name, _ in jobs} <= {"gmm", None}
    rebuilt = sorted(g for step, _, g in jobs if step == "generation")
    assert rebuilt and rebuilt[0] >= 2 and rebuilt == list(range(rebuilt[0], generations)), rebuilt
    snakemake(study, "--unlock")  # Snakemake's own lock outlives a SIGKILL, as ever
    snakemake(study, "--cores", "2")
    assert scheduled(study) == set()
    assert dvc_changed_stages(study) == set()
    verify_ok(study)
