"""DVC with a real S3 remote: SeaweedFS's S3 gateway on loopback (tests/s3_server.py).

A tiny study is reproduced and pushed to a bucket; a fresh clone, with credentials from
the environment only, pulls one generation's checkpoint alone, then everything: the
bytes match the origin's, `lineage verify` passes and Snakemake has nothing to do.
No credential is ever written to a committed file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from s3_server import ACCESS_KEY, SECRET_KEY, start_s3
from workflow_utils import TINY_PARAMS, dvc, dvc_repo, git, run, snakemake, tree_md5s, verify_ok

pytestmark = pytest.mark.slow

BUCKET = "mc-artifacts"
PARAMS = {**TINY_PARAMS, "runs": {k: TINY_PARAMS["runs"][k] for k in ("g_replace", "cat")}}
PARAMS["human"] = {k: TINY_PARAMS["human"][k] for k in ("g1", "cat")}
PARAMS["report"] = {"compare": {}}
OUTPUT_DIRS = ("data", "results", "reports")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = start_s3(tmp_path_factory.mktemp("seaweedfs"))
    try:
        _make_bucket(server.endpoint, BUCKET)
        yield server
    finally:
        server.stop()


def _make_bucket(endpoint: str, name: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(
        key=ACCESS_KEY, secret=SECRET_KEY, client_kwargs={"endpoint_url": endpoint}
    )
    for _ in range(60):  # the gateway answers before its filer is ready
        try:
            fs.mkdir(name)
            return
        except Exception:  # noqa: BLE001 - retried until the deadline, then re-raised
            time.sleep(0.5)
    fs.mkdir(name)


def _dvc_env(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """DVC with the credentials in the environment, as a colleague's shell has them."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    out = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    if check:
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def test_push_to_s3_then_a_clone_pulls_one_generation_and_then_everything(s3, tmp_path):
    origin = dvc_repo(tmp_path / "origin", PARAMS)
    # The committed config names the bucket; the endpoint and keys stay in config.local.
    dvc(origin, "remote", "add", "-d", "team", f"s3://{BUCKET}/modelcollapse")
    dvc(origin, "remote", "modify", "--local", "team", "endpointurl", s3.endpoint)
    dvc(origin, "remote", "modify", "--local", "team", "access_key_id", ACCESS_KEY)
    dvc(origin, "remote", "modify", "--local", "team", "secret_access_key", SECRET_KEY)
    dvc(origin, "repro")
    dvc(origin, "push")
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "tiny study on the team remote")
    committed = git(origin, "ls-files").stdout.split()
    assert ".dvc/config.local" not in committed
    for name in committed:
        path = origin / name
        if path.is_file() and path.stat().st_size < 1_000_000:
            assert SECRET_KEY.encode() not in path.read_bytes(), f"{name} holds the secret"

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    assert tree_md5s(clone, *OUTPUT_DIRS) == {}
    dvc(clone, "remote", "modify", "--local", "team", "endpointurl", s3.endpoint)
    assert "secret" not in (clone / ".dvc" / "config.local").read_text()

    # One generation's checkpoint, alone.
    target = "data/runs/g_replace/gen_0002/model.safetensors"
    _dvc_env("pull", target, cwd=clone)
    pulled = tree_md5s(clone, "data")
    assert pulled == {target: tree_md5s(origin, "data")[target]}

    # Then everything: the same bytes, a ledger that verifies, nothing to do.
    _dvc_env("pull", cwd=clone)
    assert tree_md5s(clone, *OUTPUT_DIRS) == tree_md5s(origin, *OUTPUT_DIRS)
    verify_ok(clone)
    out = snakemake(clone, "--cores", "1", "-n")
    assert "Nothing to be done" in out.stdout + out.stderr, out.stdout[-2000:]
    assert "Data and pipelines are up to date" in _dvc_env("status", cwd=clone).stdout

    # Without credentials the remote refuses: nothing was readable anonymously.
    anonymous = tmp_path / "anonymous"
    run(["git", "clone", "-q", str(origin), str(anonymous)], tmp_path)
    dvc(anonymous, "remote", "modify", "--local", "team", "endpointurl", s3.endpoint)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "none")
    env["AWS_CONFIG_FILE"] = str(tmp_path / "none")
    refused = subprocess.run(
        [sys.executable, "-m", "dvc", "pull", target], cwd=anonymous, env=env,
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert not (anonymous / target).exists()
