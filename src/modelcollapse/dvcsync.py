"""Snakemake and DVC on one set of artifacts: stage keys, the workflow lock, dvc.lock.

* **Stage keys.** ``data/keys/<stage>/<id>`` holds the key of what each DVC stage of
  dvc.yaml builds (``modelcollapse.keys``); each stage depends on its key file, so
  ``dvc repro`` reruns a stage exactly when settings or code it uses changed, whatever
  else changed in params.yaml or the package.
* **One lock.** Snakemake takes DVC's own repository lock (``.dvc/tmp/lock``) while it
  runs jobs, so ``snakemake`` and ``dvc repro`` (or ``dvc checkout``/``pull``) in the
  same directory exclude each other instead of deleting each other's files.
* **dvc.lock after Snakemake.** After a Snakemake run, every stage whose outputs are
  complete and up to date (``modelcollapse.plan``) and whose dvc.lock entry is not
  (:func:`stale_stages`) is committed to dvc.lock and the DVC cache (``dvc commit``),
  so ``dvc status`` is clean and ``dvc push`` sends what Snakemake built.
"""

from __future__ import annotations

import hashlib
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


def key_file(stage: str) -> str:
    """The key file a DVC stage depends on (dvc.yaml; :func:`stage_keys`):
    ``chain@<run>`` -> ``data/keys/chain/<run>``, ``report`` -> ``data/keys/report``."""
    step, _, ident = stage.partition("@")
    return f"{KEYS_DIR}/{step}/{ident}" if ident else f"{KEYS_DIR}/{step}"


def stage_keys(params: Params, keys: Keys | None = None) -> dict[str, str]:
    """``data/keys/...`` path -> the key of what that DVC stage builds."""
    keys = keys or Keys(params)
    out = {key_file(f"human@{s}"): keys.human(s) for s in params.human}
    for s in params.human:  # every root of the source, by name (the stage prunes the rest)
        roots = {root: keys.root(root) for root in params.roots(s)}
        out[key_file(f"roots@{s}")] = digest(roots)
    for run in params.runs:
        out[key_file(f"chain@{run}")] = keys.key("metrics", run)  # chains every generation
        out[key_file(f"ensemble@{run}")] = keys.key("ensemble", run)
        out[key_file(f"figures@{run}")] = keys.key("figures", run)
    out[key_file("report")] = keys.key("report")
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


def stale_stages(stages: list[str], root: str | Path = ".") -> list[str]:
    """Those of ``stages`` (complete and up to date) whose dvc.lock entry is not: no
    entry, a key file other than the one recorded, an input recorded other than its
    producer's recorded output, or a stage upstream of it among them (its outputs are
    about to be recorded anew). Read from dvc.lock alone, without hashing any data:
    ``dvc commit`` rewrites dvc.lock once per stage it is given (seconds each for a
    study of a few dozen runs), so committing the stages Snakemake did not touch cost
    minutes."""
    import yaml

    from modelcollapse.checks import safe_load_yaml

    root = Path(root)
    try:
        text = (root / "dvc.lock").read_text(encoding="utf-8")
        locked = safe_load_yaml(text) or {}
        entries: dict[str, Any] = dict(locked.get("stages") or {})
    except (FileNotFoundError, yaml.YAMLError):  # no dvc.lock yet, or one DVC will reject
        entries = {}
    produced = {
        out["path"]: out.get("md5") for entry in entries.values() for out in entry.get("outs") or ()
    }
    stale: set[str] = set()
    for stage in stages:
        entry = entries.get(stage)
        if entry is None:
            stale.add(stage)
            continue
        for dep in entry.get("deps") or ():
            path, md5 = dep["path"], dep.get("md5")
            if path == key_file(stage):
                current = root / path
                if not current.is_file() or md5 != hashlib.md5(current.read_bytes()).hexdigest():
                    stale.add(stage)
            elif path in produced and md5 != produced[path]:
                stale.add(stage)
    # Downstream of a stage committed now: its inputs are recorded anew.
    inputs = {
        stage: [dep["path"] for dep in (entries.get(stage) or {}).get("deps") or ()]
        for stage in stages
    }
    outputs = {
        stage: [out["path"] for out in (entries.get(stage) or {}).get("outs") or ()]
        for stage in stages
    }
    grown = True
    while grown:
        grown = False
        for stage in stages:
            if stage in stale:
                continue
            if any(
                dep == out or out.startswith(dep + "/")
                for upstream in stale
                for out in outputs.get(upstream, ())
                for dep in inputs[stage]
            ):
                stale.add(stage)
                grown = True
    return [stage for stage in stages if stage in stale]


def is_dvc_repo(root: str | Path = ".") -> bool:
    return (Path(root) / ".dvc").is_dir() and (Path(root) / "dvc.yaml").is_file()


def commit_to_dvc(params: Params, root: str | Path = ".") -> tuple[list[str], dict[str, str]]:
    """Write the stage keys and ``dvc commit`` the ``keys`` stage and every stage that is
    complete and up to date but whose dvc.lock entry is not (:func:`stale_stages`);
    return (committed stages, {stage left out: why})."""
    from modelcollapse.jobs import remove_unused_roots

    root = Path(root)
    write_stage_keys(params, root)
    # What the stage roots@<source> would leave: a root no run starts from any more
    # removed, the source's directory present even when no run uses the source.
    remove_unused_roots(params, root=root)
    for source in params.human:
        (root / ROOTS_DIR.format(source=source)).mkdir(parents=True, exist_ok=True)
    status = stage_status(params, root)
    fresh = [stage for stage, why in status.items() if not why]
    ready = ["keys", *stale_stages(fresh, root)]
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
