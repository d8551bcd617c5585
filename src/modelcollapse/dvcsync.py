"""Snakemake and DVC on one set of artifacts: stage keys, the workflow lock, dvc.lock.

* **Stage keys.** ``data/keys/<stage>/<id>`` holds the key of what each DVC stage of
  dvc.yaml builds (``modelcollapse.keys``); each stage depends on its key file, so
  ``dvc repro`` reruns a stage exactly when settings or code it uses changed, whatever
  else changed in params.yaml or the package.
* **One lock.** Snakemake takes DVC's own repository lock (``.dvc/tmp/lock``) while it
  runs jobs, so ``snakemake`` and ``dvc repro`` (or ``dvc checkout``/``pull``) in the
  same directory exclude each other instead of deleting each other's files.
* **dvc.lock after Snakemake.** After a Snakemake run, every stage whose outputs are
  complete and up to date (``modelcollapse.plan``) is committed to dvc.lock and the
  DVC cache (``dvc commit``), so ``dvc status`` is clean and ``dvc push`` sends what
  Snakemake built.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from modelcollapse import io
from modelcollapse.config import Params
from modelcollapse.keys import Keys, digest
from modelcollapse.paths import ROOTS_DIR

log = logging.getLogger("modelcollapse")

KEYS_DIR = "data/keys"
DVC_LOCK = ".dvc/tmp/lock"


class WorkflowLocked(RuntimeError):
    """Another process (``dvc repro``, another Snakemake) holds the workflow lock."""


def stage_keys(params: Params, keys: Keys | None = None) -> dict[str, str]:
    """``data/keys/...`` path -> the key of what that DVC stage builds."""
    keys = keys or Keys(params)
    out = {f"{KEYS_DIR}/human/{s}": keys.human(s) for s in params.human}
    for s in params.human:  # every root of the source, by name (the stage prunes the rest)
        roots = {root: keys.root(root) for root in params.roots(s)}
        out[f"{KEYS_DIR}/roots/{s}"] = digest(roots)
    for run in params.runs:
        out[f"{KEYS_DIR}/chain/{run}"] = keys.key("metrics", run)  # chains every generation
        out[f"{KEYS_DIR}/ensemble/{run}"] = keys.key("ensemble", run)
        out[f"{KEYS_DIR}/figures/{run}"] = keys.key("figures", run)
    out[f"{KEYS_DIR}/report"] = keys.key("report")
    return out


def write_stage_keys(params: Params, root: str | Path = ".", keys: Keys | None = None) -> list[str]:
    """Write the stage key files whose content changed, remove those of stages that
    are gone; return the paths written."""
    root = Path(root)
    wanted = stage_keys(params, keys)
    written = []
    for rel, key in wanted.items():
        path = root / rel
        text = key + "\n"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            io.write_text(path, text)
            written.append(rel)
    base = root / KEYS_DIR
    if base.is_dir():
        for path in sorted(base.rglob("*")):
            if path.is_file() and path.relative_to(root).as_posix() not in wanted:
                path.unlink()
    return written


def stage_status(params: Params, root: str | Path = ".") -> dict[str, str]:
    """DVC stage -> ``""`` when its outputs are complete and up to date, else why not."""
    from modelcollapse.plan import Planner

    planner = Planner(params, root)
    out = {f"human@{s}": _why(planner.human(s)) for s in params.human}
    for s in params.human:
        stale = [
            planner.root_status(root)
            for root in params.roots(s)
            if not planner.root_status(root).fresh
        ]
        out[f"roots@{s}"] = _why(stale[0]) if stale else ""
    for run in params.runs:
        last = params.run(run).generations - 1
        chain = planner.generation(run, last)
        out[f"chain@{run}"] = _why(chain if not chain.fresh else planner.step("metrics", run))
        out[f"ensemble@{run}"] = _why(planner.step("ensemble", run))
        out[f"figures@{run}"] = _why(planner.step("figures", run))
    out["report"] = _why(planner.step("report"))
    return out


def _why(status: Any) -> str:
    return "" if status.fresh else f"{status.state}: {status.reason}"


# --------------------------------------------------------------------- lock


class WorkflowLock:
    """DVC's repository lock, held by a Snakemake run (zc.lockfile, as DVC takes it)."""

    def __init__(self, root: str | Path = ".") -> None:
        self.path = Path(root) / DVC_LOCK
        self._lock: Any = None

    def acquire(self) -> None:
        import zc.lockfile

        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock = zc.lockfile.LockFile(str(self.path), content_template="{pid} snakemake")
        except zc.lockfile.LockError:
            holder = _read_holder(self.path)
            raise WorkflowLocked(
                f"{self.path} is held{holder}: `dvc repro` (or another DVC command or "
                "Snakemake run) is working in this directory, and running both at once "
                "would delete or overwrite each other's artifacts. Wait for it to finish, "
                "then run snakemake again."
            ) from None

    @property
    def held(self) -> bool:
        return self._lock is not None

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _read_holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
    return f" (by process {text})" if text else ""


# --------------------------------------------------------------------- dvc.lock


def is_dvc_repo(root: str | Path = ".") -> bool:
    return (Path(root) / ".dvc").is_dir() and (Path(root) / "dvc.yaml").is_file()


def commit_to_dvc(params: Params, root: str | Path = ".") -> tuple[list[str], dict[str, str]]:
    """Write the stage keys and ``dvc commit`` every stage that is complete and up to
    date; return (committed stages, {stage left out: why})."""
    from modelcollapse.jobs import remove_unused_roots

    root = Path(root)
    write_stage_keys(params, root)
    # What the stage roots@<source> would leave: a root no run starts from any more
    # removed, the source's directory present even when no run uses the source.
    remove_unused_roots(params, root=root)
    for source in params.human:
        (root / ROOTS_DIR.format(source=source)).mkdir(parents=True, exist_ok=True)
    status = stage_status(params, root)
    ready = ["keys"] + [stage for stage, why in status.items() if not why]
    left = {stage: why for stage, why in status.items() if why}
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "commit", "--force", "--quiet", *ready],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"dvc commit failed ({result.returncode}): {result.stderr.strip() or result.stdout}"
        )
    return ready, left
