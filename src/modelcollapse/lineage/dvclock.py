"""dvc.lock for ``lineage verify``: each run directory's md5 against its ``.dir``
listing in the DVC cache, file by file (or, when the listing is not cached, recomputed
from the ledger), and the md5s it holds of the human data and of head.json.
"""

from __future__ import annotations

import configparser
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from modelcollapse import io
from modelcollapse.checks import safe_load_yaml
from modelcollapse.lineage.records import head_path, parse_gen_path, rel
from modelcollapse.paths import HUMAN_DIR, ROOTS_DIR, RUN_DIR
from modelcollapse.settings import is_root

if TYPE_CHECKING:
    from modelcollapse.lineage.audit import VerifyResult


def dir_md5(entries: dict[str, str]) -> str:
    """The md5 DVC 3 gives a directory: md5 of its sorted JSON listing, plus ``.dir``."""
    listing = [{"md5": md5, "relpath": path} for path, md5 in sorted(entries.items())]
    return hashlib.md5(json.dumps(listing, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


def dvc_cache_dir(root: Path) -> Path:
    """The local DVC cache: ``.dvc/cache`` unless ``[cache] dir`` says otherwise."""
    cache = root / ".dvc" / "cache"
    for name in ("config", "config.local"):
        cfg_path = root / ".dvc" / name
        if cfg_path.exists():
            cfg = configparser.ConfigParser(strict=False, interpolation=None)
            try:
                cfg.read(cfg_path)
            except configparser.Error:
                continue
            if cfg.has_option("cache", "dir"):
                cache = (root / ".dvc" / cfg.get("cache", "dir")).resolve()
    return cache


def read_dir_listing(root: Path, md5: str) -> dict[str, str] | None:
    """relpath -> md5 from the DVC cache's ``.dir`` object, or None when not cached."""
    value = md5.removesuffix(".dir")
    path = dvc_cache_dir(root) / "files" / "md5" / value[:2] / (value[2:] + ".dir")
    if not path.exists():
        return None
    data = io.read_json(path)
    if not isinstance(data, list) or not all(
        isinstance(e, dict) and "relpath" in e and "md5" in e for e in data
    ):
        raise io.ArtifactError(f"corrupt DVC .dir object {path}")
    return {e["relpath"]: e["md5"] for e in data}


def load_dvc_lock(root: Path) -> dict[str, Any] | None:
    path = root / "dvc.lock"
    if not path.exists():
        return None
    try:
        lock = safe_load_yaml(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise io.ArtifactError(f"dvc.lock does not parse: {exc}") from exc
    if not isinstance(lock, dict):
        raise io.ArtifactError("dvc.lock does not parse: expected a mapping")
    return lock


def _stage_out(lock: dict[str, Any], stage: str, path: str) -> dict[str, Any] | None:
    outs = ((lock.get("stages") or {}).get(stage) or {}).get("outs") or []
    return next((o for o in outs if isinstance(o, dict) and o.get("path") == path), None)


def _check_dvc(run: str, records: dict[int, dict], root: Path, lock: dict, res: VerifyResult):
    """A run's directory against chain@<run>'s output; a root's (``roots/<source>/<id>``)
    against the part of roots@<source>'s output under ``<id>/``."""
    if is_root(run):
        _, source, root_id = run.split("/")
        run_dir, stage, prefix = ROOTS_DIR.format(source=source), f"roots@{source}", root_id + "/"
    else:
        run_dir, stage, prefix = RUN_DIR.format(run=run), f"chain@{run}", ""
    out = _stage_out(lock, stage, run_dir)
    if out is None or "md5" not in out:
        res.notes.append(f"dvc.lock has no output {run_dir} (stage {stage}): skipped")
        return
    ledger: dict[str, tuple[int, str]] = {}
    for g, rec in records.items():
        for a in rec["artifacts"].values():
            ledger[a["path"].removeprefix(run_dir + "/")] = (g, a["md5"])
    lock_md5 = out["md5"]
    full = listing = read_dir_listing(root, lock_md5)
    if full is not None and prefix:  # the other roots of the source are not this one's
        listing = {k: v for k, v in full.items() if k.startswith(prefix)}
    elif listing is None and prefix:
        res.notes.append(
            f"{run}: {run_dir}'s .dir listing is not in the local DVC cache (it holds every "
            "root of the source, so it is not recomputed from one root's records): skipped"
        )
        return
    if listing is None:
        computed = dir_md5({k: v[1] for k, v in ledger.items()})
        res.counts["dvc_recomputed"] += 1
        if computed != lock_md5:
            msg = (
                f"dvc.lock records {lock_md5} ({out.get('nfiles')} files) but the "
                f"ledger's {len(ledger)} files hash to {computed}; the .dir listing is "
                "not in the local DVC cache (dvc pull / dvc fetch it to name the file)"
            )
            res.fail(run, None, run_dir, msg)
    else:
        if full is None or dir_md5(full) != lock_md5:
            res.fail(run, None, run_dir, f"the DVC cache's listing of {lock_md5} is corrupt")
        res.counts["dvc_runs"] += 1
        res.counts["dvc_files"] += len(listing)
        for relpath in sorted(set(listing) | set(ledger)):
            parsed = parse_gen_path(f"{run_dir}/{relpath}")
            gen = parsed[1] if parsed else None
            if relpath not in ledger:
                msg = f"dvc.lock lists it (md5 {listing[relpath]}) but no ledger record has it"
            elif relpath not in listing:
                msg = f"the ledger records it but dvc.lock's {run_dir} ({lock_md5}) lacks it"
            elif listing[relpath] != ledger[relpath][1]:
                msg = f"md5 {ledger[relpath][1]} in the ledger, {listing[relpath]} in dvc.lock"
            else:
                continue
            res.fail(run, gen, f"{run_dir}/{relpath}", msg)
    _check_dvc_human(run, records, root, lock, res)


def _check_dvc_human(run: str, records: dict[int, dict], root: Path, lock: dict, res):
    seen: dict[str, tuple[int, str]] = {}
    for g, rec in records.items():
        for f in rec["human_data"]["files"].values():
            seen.setdefault(f["path"], (g, f["md5"]))
    sources = sorted({rec["human_data"]["source"] for rec in records.values()})
    listings: dict[str, dict[str, str]] = {}
    for source in sources:
        human = HUMAN_DIR.format(source=source)
        out = _stage_out(lock, f"human@{source}", human)
        if out is None or "md5" not in out:
            continue
        listing = read_dir_listing(root, out["md5"])
        if listing is None:
            res.notes.append(
                f"run {run}: {human}'s .dir listing is not in the local DVC cache; "
                "human data checked against the files only"
            )
            continue
        listings[human] = listing
    for path, (g, md5) in sorted(seen.items()):
        human, _, relpath = path.rpartition("/")
        if human not in listings:
            continue
        res.counts["dvc_human_files"] += 1
        if listings[human].get(relpath) != md5:
            res.fail(
                run, g, path, f"md5 {md5} in the ledger, {listings[human].get(relpath)} in dvc.lock"
            )


def _check_dvc_head(run: str, root: Path, lock: dict, res: VerifyResult) -> None:
    path = head_path(run, root)
    where = rel(path, root)
    out = _stage_out(lock, f"chain@{run}", where)
    if out is None or "md5" not in out:
        res.notes.append(f"dvc.lock has no output {where} (stage chain@{run}): head not checked")
    elif path.exists():  # a missing head is a problem already
        res.counts["dvc_heads"] += 1
        actual = io.file_md5(path)  # DVC 3 (hash: md5): the md5 of the file's bytes
        if actual != out["md5"]:
            msg = (
                f"md5 {actual}, dvc.lock records {out['md5']}: head.json changed after "
                "dvc.lock was written (the workflow records a rebuilt head in both)"
            )
            res.fail(run, None, where, msg)
