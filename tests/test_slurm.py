"""Snakemake on a real SLURM cluster through its executor plugin (profiles/slurm).

``scripts/local_slurm.sh`` starts a single-node cluster from Debian's packages
(munged, slurmctld, slurmd; no accounting database) on loopback. A tiny study runs
through ``--profile profiles/slurm``, every job an ``sbatch``; its artifacts are
byte-identical to the same study run locally, its ledger verifies and dvc.lock records
it (`dvc status` clean). A run with ``device: cuda`` asks SLURM for a GPU and gets the
node's (a fake one: this machine has none), and its job, failing on the cluster, is
reported as failed, with its rule and its SLURM state.

The plugin lives in a virtual environment of its own (``scripts/setup_tests.sh``
makes it; ``MODELCOLLAPSE_SLURM_VENV``): installed beside the workflow, it would slow
every other Snakemake start of the suite (docs/cluster.md).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from workflow_utils import (
    ROOT,
    TINY_PARAMS,
    dvc,
    dvc_repo,
    make_workflow,
    run,
    snakemake,
    tree_md5s,
    verify_ok,
)

from modelcollapse.config import validate

pytestmark = pytest.mark.slow

SLURM_TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")
OUTPUT_DIRS = ("data", "results", "reports")
PARAMS = {  # two generations a run: a chain of jobs waits on SLURM's status checks
    **TINY_PARAMS,
    "runs": {
        k: {**TINY_PARAMS["runs"][k], "generations": 2} for k in ("g_replace", "g_mix", "cat")
    },
    "human": {k: TINY_PARAMS["human"][k] for k in ("g1", "cat")},
    "report": {"compare": {"gauss": ["g_replace", "g_mix"]}},
}
# A first status check after 3 s instead of the profile's 20 (jobs here take seconds).
FAST_CHECKS = ("--slurm-init-seconds-before-status-checks", "3")


def slurm_python() -> Path:
    """The Python of the virtual environment that has the SLURM executor plugin."""
    default = Path.home() / ".cache" / "modelcollapse" / "venv-slurm"
    venv = Path(os.environ.get("MODELCOLLAPSE_SLURM_VENV", default))
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("a local SLURM cluster needs root (slurmd starts jobs as their user)")
    missing = [t for t in SLURM_TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: the README's test command installs them")
    if not slurm_python().exists():
        pytest.fail(f"{slurm_python()} missing: the README's test command makes it")
    state = tmp_path_factory.mktemp("slurm")
    script = str(ROOT / "scripts" / "local_slurm.sh")
    # One fake GPU (a gres without a device): GPU jobs are placed, and fail if they use it.
    subprocess.run(["bash", script, "start", str(state), "--fake-gpu"], check=True, timeout=120)
    try:
        yield state
    finally:
        subprocess.run(["bash", script, "stop", str(state)], check=False, timeout=120)


def on_slurm(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(
        [str(slurm_python()), "-m", "snakemake", "--profile", "profiles/slurm", *FAST_CHECKS,
         *args],
        cwd, check=check, timeout=1500,
    )  # fmt: skip


def submitted(output: str) -> list[str]:
    """SLURM job ids of the jobs a Snakemake run submitted."""
    return re.findall(r"submitted with SLURM jobid (\d+)", output)


def test_a_study_on_slurm_matches_the_local_run_byte_for_byte(cluster, tmp_path):
    local = dvc_repo(tmp_path / "local", PARAMS)
    snakemake(local, "--cores", "2")

    remote = dvc_repo(tmp_path / "cluster", PARAMS)
    out = on_slurm(remote)
    log = out.stdout + out.stderr
    jobs = submitted(log)
    planned = int(re.search(r"(\d+) of (\d+) steps \(100%\) done", log).group(2))
    # Every job but the `all` target ran as a SLURM job, and SLURM saw each complete.
    assert len(jobs) == planned - 1, log[-3000:]
    states = run(["squeue", "--states=all", "--noheader", "--format=%i|%T"], tmp_path).stdout
    state_of = dict(line.split("|") for line in states.split())
    assert {state_of[j] for j in jobs} == {"COMPLETED"}, states

    assert tree_md5s(remote, *OUTPUT_DIRS) == tree_md5s(local, *OUTPUT_DIRS)
    verify_ok(remote)
    # The submitting process recorded the cluster's work in dvc.lock, as a local run does.
    assert "Data and pipelines are up to date" in dvc(remote, "status").stdout
    again = on_slurm(remote)
    assert "Nothing to be done" in again.stdout + again.stderr
    assert submitted(again.stdout + again.stderr) == []


def test_a_gpu_run_gets_a_gpu_and_its_failure_is_reported(cluster, tmp_path):
    """A language-model run with ``device: cuda``: its generation job asks SLURM for a
    GPU and is placed on the node's (fake) one, its human data on none; torch, which
    has no CUDA here, then fails inside the job, and Snakemake reports the failure with
    its rule and SLURM state."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the GPU job would succeed")
    corpus = tmp_path / "flow" / "corpus"
    corpus.mkdir(parents=True)
    for i in range(8):
        lines = (f"Line {j} of document {i}: to be, or not to be, that is the question."
                 for j in range(40))  # fmt: skip
        (corpus / f"doc{i}.txt").write_text("\n".join(lines) + "\n")
    params = {
        "defaults": {"samples_per_generation": 4, "seed": 0, "chains": 1},
        "human": {
            "texts": {
                "family": "lm",
                "data": {"source": "directory", "path": "corpus", "vocab_size": 300},
            }
        },
        "runs": {
            "lm_gpu": {
                "family": "lm",
                "human": "texts",
                "generations": 1,
                "options": {"size": "tiny", "steps": 1, "threads": 1, "device": "cuda"},
            }
        },
        "report": {"compare": {}},
    }
    flow = make_workflow(tmp_path / "flow", params)
    out = on_slurm(flow, check=False)
    log = out.stdout + out.stderr
    assert out.returncode != 0, log[-3000:]
    jobs = dict(re.findall(r"SLURM jobid (\d+) \(log: [^)]*/rule_(\w+)/", log))
    # Generation 0 is the run's root's: the root job alone asked for (and got) a GPU.
    assert {"prepare_human", "root"} <= set(jobs.values()), log[-3000:]
    for job_id, rule in jobs.items():
        shown = run(["scontrol", "show", "job", job_id], tmp_path).stdout
        assert ("TresPerJob=gres:gpu:1" in shown) == (rule == "root"), shown
    assert "Error in rule root" in log, log[-3000:]
    assert re.search(r"SLURM-job '\d+' failed, SLURM status is: 'FAILED'", log), log[-3000:]
    root = validate(params).run("lm_gpu").root
    job_log = (flow / "logs" / f"{root}.log").read_text()
    assert "CUDA" in job_log, job_log[-2000:]
    # The human data it prepared on the cluster stays; the failed generation left nothing.
    assert (flow / "data" / "human" / "texts" / "pool.parquet").exists()
    assert not (flow / "data" / root / "gen_0000").exists()
