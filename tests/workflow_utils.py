"""Helpers for end-to-end tests: a copy of the workflow in a temporary directory."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = (
    "Snakefile",
    "rules",
    "scripts",
    "schemas",
    "src",
    "dvc.yaml",
    "environment.yml",
    "profiles",
)

TINY_PARAMS = {
    "defaults": {"samples_per_generation": 30, "seed": 7, "chains": 1},
    "human": {
        "g1": {
            "family": "gaussian",
            "truth": {"dim": 1, "mean": 1.0, "std": 2.0},
            "pool_size": 2000,
            "test_size": 500,
            "seed": 1,
        },
        "mix2": {
            "family": "gmm",
            "seed": 2,
            "pool_size": 2000,
            "test_size": 500,
            "truth": {
                "weights": [0.5, 0.5],
                "means": [[-2.0, 0.0], [2.0, 0.0]],
                "covariances": [[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]],
            },
        },
        "cat": {
            "family": "categorical",
            "truth": {"num_symbols": 8},
            "seed": 3,
            "pool_size": 2000,
            "test_size": 500,
        },
        "lin": {
            "family": "linear_regression",
            "truth": {"dim": 3, "noise_std": 0.5},
            "seed": 4,
            "pool_size": 2000,
            "test_size": 500,
        },
    },
    "runs": {
        "g_replace": {"family": "gaussian", "human": "g1", "generations": 4, "chains": 40},
        "g_mix": {
            "family": "gaussian",
            "human": "g1",
            "generations": 3,
            "regime": "mix",
            "real_fraction": 0.2,
        },
        "g_acc": {"family": "gaussian", "human": "g1", "generations": 3, "regime": "accumulate"},
        "gmm": {
            "family": "gmm",
            "human": "mix2",
            "generations": 2,
            "samples_per_generation": 200,
            "options": {"max_iter": 100},
        },
        "cat": {"family": "categorical", "human": "cat", "generations": 3},
        "lin": {
            "family": "linear_regression",
            "human": "lin",
            "generations": 3,
            "regime": "fresh",
            "real_fraction": 0.5,
        },
    },
    "report": {"compare": {"gauss": ["g_replace", "g_mix", "g_acc"]}},
}


def make_workflow(dest: Path, params: dict | None = None) -> Path:
    """Copy the workflow's tracked files into ``dest`` with a (tiny) params.yaml."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(
                src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(src, dest / name)
    (dest / "params.yaml").write_text(yaml.safe_dump(params or TINY_PARAMS, sort_keys=False))
    return dest


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 900):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}) in {cwd}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def snakemake(cwd: Path, *args: str, check: bool = True):
    return run([sys.executable, "-m", "snakemake", *args], cwd, check=check)


def dvc(cwd: Path, *args: str, check: bool = True):
    return run([sys.executable, "-m", "dvc", *args], cwd, check=check)


def tree_md5s(root: Path, *dirs: str) -> dict[str, str]:
    """md5 of every file under the given directories, keyed by relative path."""
    out = {}
    for d in dirs:
        for path in sorted((root / d).rglob("*")):
            if path.is_file() and path.name not in (".gitignore", ".snakemake_timestamp"):
                out[path.relative_to(root).as_posix()] = hashlib.md5(path.read_bytes()).hexdigest()
    return out


def git(cwd: Path, *args: str):
    return run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd)


def dvc_repo(path: Path, params: dict | None = None, remote: Path | None = None) -> Path:
    """A copy of the workflow as a git + DVC repository (its code committed)."""
    wf = make_workflow(path, params)
    for name in (".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, wf / name)
    git(wf, "init", "-q", "-b", "main")
    dvc(wf, "init", "-q")
    shutil.copytree(ROOT / ".dvc" / "plots", wf / ".dvc" / "plots")  # the band template
    dvc(wf, "config", "core.analytics", "false")
    if remote is not None:
        dvc(wf, "remote", "add", "-d", "local", str(remote))
    git(wf, "add", "-A")
    git(wf, "commit", "-q", "-m", "code")
    return wf


# Snakemake rule -> the step it runs (modelcollapse.paths.job_of_path's names).
RULE_STEPS = {
    "prepare_human": "human",
    "root": "generation",
    "generation": "generation",
    "collect_metrics": "metrics",
    "ensemble": "ensemble",
    "plots": "figures",
    "report": "report",
}
_RULE = re.compile(r"^(?:local)?rule (\w+):$")
_WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")


def scheduled(cwd: Path, *args: str) -> set[tuple]:
    """The jobs ``snakemake -n`` schedules, as (step, run or source, generation)."""
    out = snakemake(cwd, "--cores", "1", "-n", *args)
    jobs: list[list] = []
    for line in out.stdout.splitlines():
        m = _RULE.match(line)
        if m:
            jobs.append([m[1], {}])
            continue
        w = _WILDCARDS.match(line)
        if w and jobs:
            jobs[-1][1] = dict(kv.split("=", 1) for kv in w[1].split(", "))
    result = set()
    for rule, wc in jobs:
        if rule == "all":
            continue
        if rule == "root":  # generation 0 of the runs that share it
            result.add(("generation", f"roots/{wc['source']}/{wc['root']}", 0))
            continue
        name = wc.get("run") or wc.get("source")
        gen = int(wc["gen"]) if "gen" in wc else None
        result.add((RULE_STEPS[rule], name, gen))
    return result


def run_steps(run_id: str, generations, *steps: str) -> set[tuple]:
    """The step tuples of ``run_id``: the given generations (from 1 on: generation 0 is
    a root's, ``root_step``) and the named steps."""
    assert 0 not in generations, "generation 0 is the run's root's: root_step()"
    return {("generation", run_id, g) for g in generations} | {(s, run_id, None) for s in steps}


def root_of(params: dict, run_id: str) -> str:
    """The root (``roots/<source>/<id>``) run ``run_id`` of a params dict starts from."""
    from modelcollapse.config import validate

    return validate(params).run(run_id).root


def root_step(params: dict, run_id: str) -> tuple:
    """The step tuple of the root run ``run_id`` starts from: its generation 0."""
    return ("generation", root_of(params, run_id), 0)


def ledger_mtimes(root: Path) -> dict[str, int]:
    """mtime_ns of every ledger record: a record is rewritten iff its generation ran
    (under either tool; DVC relinks its outputs, so their mtimes say less)."""
    return {
        p.relative_to(root).as_posix(): p.stat().st_mtime_ns
        for p in sorted((root / "lineage").rglob("gen_*.json"))
    }


def rebuilt_generations(before: dict[str, int], after: dict[str, int]) -> set[tuple]:
    out = set()
    for path, mtime in after.items():
        if before.get(path) != mtime:
            # lineage/<run>/gen_NNNN.json or lineage/roots/<source>/<id>/gen_0000.json
            parts = path.split("/")
            out.add(("generation", "/".join(parts[1:-1]), int(parts[-1][4:8])))
    return out


def dvc_stages_run(output: str) -> set[str]:
    """Stages `dvc repro` ran, from its output."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def dvc_changed_stages(cwd: Path) -> set[str]:
    out = dvc(cwd, "status", "--json")
    return set(json.loads(out.stdout or "{}"))


def verify_ok(cwd: Path) -> str:
    out = run([sys.executable, "-m", "modelcollapse", "lineage", "verify"], cwd, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout
