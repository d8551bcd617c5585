"""Incremental rebuilds, with the real Snakemake and DVC: each kind of change reruns
exactly what it affects, under both tools, and `lineage verify` passes afterwards.

A small study is built once (Snakemake, in a git + DVC repository); each test edits a
copy of it and asserts the exact set of jobs scheduled (``snakemake -n``), of stages
`dvc repro` runs, and of generations whose ledger record was rewritten.
"""

from __future__ import annotations

import json
import os
import re
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
    root_of,
    root_step,
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


def params_of(wf: Path) -> dict:
    return yaml.safe_load((wf / "params.yaml").read_text())


def root_dir(wf: Path, run_id: str) -> str:
    """The directory of the run's generation 0 (its root's), relative to ``wf``."""
    return f"data/{root_of(params_of(wf), run_id)}/gen_0000"


def edit_module(wf: Path, module: str, text: str) -> None:
    path = wf / "src" / "modelcollapse" / module
    path.write_text(path.read_text() + text)


def committed_stages(stderr: str) -> set[str]:
    """The stages a Snakemake run committed to dvc.lock, as it reports them."""
    (line,) = [x for x in stderr.splitlines() if "dvc.lock: committed" in x]
    return set(line.split("stage(s): ", 1)[1].split(", "))


def snakemake_rebuilds(wf: Path, expected: set[tuple], committed: set[str] | None = None) -> None:
    """`snakemake -n` schedules exactly ``expected``; one run rebuilds exactly its
    generations and commits exactly ``committed`` (and the keys stage) to dvc.lock;
    afterwards nothing is left to do, dvc.lock is current, verify passes."""
    assert scheduled(wf) == expected
    before = ledger_mtimes(wf)
    out = snakemake(wf, "--cores", "2")
    if committed is not None:
        assert committed_stages(out.stderr) == committed | {"keys"}
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
    shared = root_of(params_of(study), "g_replace")  # with g_acc
    edit_params(study, "g_replace", seed=8)
    # Generation 0 of the new seed is a root of its own; g_acc keeps the one it shared.
    root = root_step(params_of(study), "g_replace")
    assert root[1] != shared == root_of(params_of(study), "g_acc")
    expected = {root} | run_steps("g_replace", range(1, 4), *RUN_STEPS) | REPORT
    if tool == "snakemake":
        # chain@g_acc records data/roots/g1 as an input: it is committed again, with
        # what reads it (figures@g_acc, through its chain's files)
        run_stages = stages_of("g_replace", "chain", "ensemble", "figures")
        again = {"roots@g1", "chain@g_acc", "figures@g_acc", "report"}
        snakemake_rebuilds(study, expected, committed=run_stages | again)
    else:
        dvc_rebuilds(
            study,
            # chain@g_acc depends on every root of its source: it runs, and keeps all
            stages_of("g_replace", "chain", "ensemble", "figures")
            | {"roots@g1", "chain@g_acc", "report"},
            {root} | run_steps("g_replace", range(1, 4)),
        )
    assert (study / f"data/{shared}").is_dir()


def test_a_human_source_change_rebuilds_the_runs_on_it_only(study):
    params = yaml.safe_load((study / "params.yaml").read_text())
    params["human"]["cat"]["truth"]["zipf_exponent"] = 1.5
    (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    root = root_step(params, "cat")
    snakemake_rebuilds(
        study,
        {("human", "cat", None), root} | run_steps("cat", range(1, 3), *RUN_STEPS) | REPORT,
        committed=stages_of("cat", "chain", "ensemble", "figures")
        | {"human@cat", "roots@cat", "report"},
    )


def test_a_second_run_with_nothing_to_do_leaves_dvc_lock_alone(study):
    """`dvc commit` rewrites dvc.lock once per stage it is given (seconds each): a run
    that built nothing commits nothing, and dvc status stays clean."""
    lock = (study / "dvc.lock").read_bytes()
    out = snakemake(study, "--cores", "2")
    assert "dvc.lock: committed" not in out.stderr
    assert (study / "dvc.lock").read_bytes() == lock
    assert dvc_changed_stages(study) == set()
    # Python's bytecode beside the code the keys stage depends on is not code (.dvcignore):
    # the Snakefile compiles it, Python writes it wherever PYTHONDONTWRITEBYTECODE is unset.
    assert list((study / "src/modelcollapse/__pycache__").glob("*.pyc"))
    (study / "src/modelcollapse/__pycache__/stray.cpython-311.pyc").write_bytes(b"\0")
    assert dvc_changed_stages(study) == set()


def test_a_run_walks_only_what_runs_and_a_shown_dag_keeps_the_lineage(built):
    """An up-to-date step declares no inputs when Snakemake builds the DAG to run it (what
    it reads is up to date too: docs/architecture.md), so a run with nothing to do does
    not walk the generations. A DAG built to be shown (--dag) or forced whole
    (--forceall) keeps every edge."""
    out = snakemake(built, "--cores", "1", "-n", "--debug-dag")
    log = out.stdout + out.stderr
    assert "Nothing to be done" in log
    candidates = {m[1] for m in re.finditer(r"^candidate job (\w+)$", log, re.M)}
    assert candidates == {"all", "prepare_human", "collect_metrics", "ensemble", "plots", "report"}
    generations = sum(run["generations"] - 1 for run in PARAMS["runs"].values())
    roots = {root_of(PARAMS, run_id) for run_id in PARAMS["runs"]}

    # --dag: every generation hangs off its predecessor (a root for generation 1),
    # every root off its human data.
    dot = snakemake(built, "--dag").stdout
    rules = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)', dot, re.M))
    into = {}
    for a, b in re.findall(r"^\s*(\d+) -> (\d+)$", dot, re.M):
        into.setdefault(b, []).append(rules[a])
    gens = [n for n, rule in rules.items() if rule == "generation"]
    assert len(gens) == generations
    assert all(sorted(into.get(n, [])) in (["generation"], ["root"]) for n in gens)
    assert sorted(into.get(n, []) for n, rule in rules.items() if rule == "root") == [
        ["prepare_human"]
    ] * len(roots)

    # --forceall: every step, generation 0 (the roots) included.
    every = {("human", source, None) for source in PARAMS["human"]} | REPORT
    every |= {("generation", root, 0) for root in roots}
    for run_id, run in PARAMS["runs"].items():
        every |= run_steps(run_id, range(1, run["generations"]), *RUN_STEPS)
    assert scheduled(built, "--forceall") == every


# ---------------------------------------------------------------------- code


@pytest.mark.parametrize("tool", ["snakemake", "dvc"])
def test_editing_a_family_reruns_exactly_its_runs(study, tool):
    # The family's module draws its human data from the truth too: that is rebuilt.
    edit_module(study, "families/gmm.py", "\n\nEDITED = True\n")
    human, root = {("human", "mix2", None)}, root_step(PARAMS, "gmm")
    if tool == "snakemake":
        stages = stages_of("gmm", "chain", "ensemble", "figures")
        snakemake_rebuilds(
            study,
            human | {root} | run_steps("gmm", [1], *RUN_STEPS) | REPORT,
            committed=stages | {"human@mix2", "roots@mix2", "report"},
        )
    else:
        stages = stages_of("gmm", "chain", "ensemble", "figures")
        dvc_rebuilds(
            study, stages | {"human@mix2", "roots@mix2", "report"}, {root} | run_steps("gmm", [1])
        )


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
        # dvc.lock: the stages that reran, not the others (each commit rewrites it).
        committed = {f"figures@{r}" for r in PARAMS["runs"]} | {"report"}
        snakemake_rebuilds(study, figures | REPORT, committed=committed)
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
    root = root_dir(study, "g_acc")  # shared with g_replace
    before = tree_md5s(study, "data/runs/g_acc", root)
    (study / root / "samples.parquet").unlink()
    shutil.rmtree(study / "data/runs/g_acc/gen_0002")
    target = "data/runs/g_acc/gen_0002/model.safetensors"
    expected = {root_step(PARAMS, "g_acc")} | run_steps("g_acc", range(1, 3))
    assert scheduled(study, target) == expected
    snakemake(study, "--cores", "1", target)
    assert tree_md5s(study, "data/runs/g_acc", root) == before  # deterministic: same bytes
    assert scheduled(study) == set()
    verify_ok(study)


@pytest.mark.parametrize("name", ["train.json", "model.json"])
def test_a_missing_file_the_rule_does_not_declare_reruns_its_generation(study, name):
    """The generation rule declares what other jobs read; the planner checks the files
    written beside them (rules/generation.smk): one missing reruns its generation."""
    before = tree_md5s(study, "data/runs/g_replace")
    (study / "data/runs/g_replace/gen_0002" / name).unlink()
    target = "data/runs/g_replace/gen_0002/model.safetensors"
    assert scheduled(study, target) == {("generation", "g_replace", 2)}
    snakemake(study, "--cores", "1", target)
    assert tree_md5s(study, "data/runs/g_replace") == before
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
    corrupt = f"{root_dir(study, 'cat')}/samples.parquet"
    (study / corrupt).write_bytes(b"PAR1 corrupt")
    target = "data/runs/cat/gen_0001/model.safetensors"
    out = snakemake(study, "--cores", "1", "--forcerun", target, target, check=False)
    assert out.returncode != 0
    assert corrupt in (study / "logs/cat/gen_0001.log").read_text()
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


# ------------------------------------------------------- generation 0, shared


def test_runs_with_the_same_generation_0_share_one_root_and_the_ledger_shows_it(built):
    from modelcollapse.lineage.records import head_digest

    shared = root_of(PARAMS, "g_replace")
    assert root_of(PARAMS, "g_acc") == shared  # replace and accumulate: one generation 0
    assert len({root_of(PARAMS, r) for r in PARAMS["runs"]}) == 3
    # Built once: one directory, one job log, no run holds a generation 0 of its own.
    assert [p.name for p in (built / "data/roots/g1").iterdir()] == [shared.rsplit("/")[-1]]
    assert len(list((built / "logs/roots/g1").iterdir())) == 1
    assert not list(built.glob("data/runs/*/gen_0000")) + list(
        built.glob("lineage/*/gen_0000.json")
    )
    root_record = json.loads((built / f"lineage/{shared}/gen_0000.json").read_text())
    assert root_record["run"] == shared and root_record["root"] is None
    assert "regime" not in root_record["settings"]
    for run_id in ("g_replace", "g_acc"):
        first = json.loads((built / f"lineage/{run_id}/gen_0001.json").read_text())
        assert first["root"] == shared
        assert first["prev_content_hash"] == root_record["content_hash"]
        assert (shared, 0, root_record["content_hash"]) in [
            (p["run"], p["generation"], p["content_hash"]) for p in first["parents"]
        ]
        head = json.loads((built / f"lineage/{run_id}/head.json").read_text())
        own = [
            json.loads((built / f"lineage/{run_id}/gen_{g:04d}.json").read_text())["content_hash"]
            for g in range(1, head["generations"])
        ]
        assert head["root"] == shared
        assert head["digest"] == head_digest([root_record["content_hash"], *own])
    # Generation 0's metrics are the root's, in both runs' tables.
    rows = [
        (built / f"results/{r}/metrics.csv").read_text().splitlines()[1]
        for r in ("g_replace", "g_acc")
    ]
    assert rows[0] == rows[1]
    # What a reviewer reads: the chain back to the root, one node for its checkpoint.
    show = subprocess.run(
        [sys.executable, "-m", "modelcollapse", "lineage", "show", "g_acc:1"],
        cwd=built, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"generation 0: root {shared} (" in show
    assert f"parents       generation 0: root {shared} (" in show
    dot = subprocess.run(
        [sys.executable, "-m", "modelcollapse", "lineage", "export", "--run", "g_replace",
         "--run", "g_acc", "--generations", "0:2", "-f", "dot"],
        cwd=built, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    model = f'"data/{shared}/gen_0000/model.safetensors"'
    assert sum(1 for line in dot.splitlines() if line.strip().startswith(model + " [")) == 1
    assert f'"data/{shared}/gen_0000/samples.parquet" -> "data/runs/g_acc/gen_0001/' in dot
    assert f'"data/{shared}/gen_0000/samples.parquet" -> "data/runs/g_replace/gen_0001/' in dot
    summary = (built / "reports/lineage.md").read_text()
    assert f"Generation 0 is the root `{shared}`, shared with g_acc" in summary


def test_a_regime_change_keeps_the_shared_root(study):
    edit_params(study, "g_acc", regime="accumulate_subsample")
    snakemake_rebuilds(study, run_steps("g_acc", range(1, 3), *RUN_STEPS) | REPORT)


@pytest.mark.parametrize("tool", ["snakemake", "dvc"])
def test_a_root_no_run_starts_from_is_removed_with_its_records(study, tool):
    old = root_of(PARAMS, "cat")
    edit_params(study, "cat", seed=9)
    new = root_step(params_of(study), "cat")
    expected = {new} | run_steps("cat", range(1, 3), *RUN_STEPS) | REPORT
    if tool == "snakemake":  # in a DVC repository, after its jobs: as roots@cat would
        snakemake_rebuilds(study, expected)
    else:
        stages = stages_of("cat", "chain", "ensemble", "figures") | {"roots@cat", "report"}
        dvc_rebuilds(study, stages, {new} | run_steps("cat", range(1, 3)))
    assert [p.name for p in (study / "data/roots/cat").iterdir()] == [new[1].rsplit("/")[-1]]
    assert not (study / f"data/{old}").exists() and not (study / f"lineage/{old}").exists()


def test_a_generation_0_of_a_run_s_own_from_before_roots_is_flagged_and_then_removed(study):
    """A study built before generation 0 was shared kept it in data/runs/<run>/gen_0000
    with a record in lineage/<run>/: verify names it, and rebuilding generation 1 (which
    the new keys make every run do) removes both."""
    shared = root_of(PARAMS, "cat")
    shutil.copytree(study / f"data/{shared}/gen_0000", study / "data/runs/cat/gen_0000")
    shutil.copy(study / f"lineage/{shared}/gen_0000.json", study / "lineage/cat/gen_0000.json")
    out = subprocess.run(
        [sys.executable, "-m", "modelcollapse", "lineage", "verify", "cat"],
        cwd=study, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 1
    assert "run cat generation 0: lineage/cat/gen_0000.json: a run's own generation 0" in (
        out.stderr
    )
    target = "data/runs/cat/gen_0001/model.safetensors"
    snakemake(study, "--cores", "1", "--forcerun", target, target)
    assert not (study / "data/runs/cat/gen_0000").exists()
    assert not (study / "lineage/cat/gen_0000.json").exists()
    verify_ok(study)


def test_a_run_taken_out_of_params_keeps_its_root_and_its_ledger_verifies(study):
    root = root_of(PARAMS, "cat")
    params = params_of(study)
    del params["runs"]["cat"]
    (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = dvc(study, "repro")
    assert {"roots@cat", "report"} <= dvc_stages_run(out.stdout)
    assert (study / f"data/{root}/gen_0000/model.safetensors").is_file()
    assert "note: run cat is not in params.yaml" in verify_ok(study)
