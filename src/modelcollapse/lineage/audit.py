"""``lineage verify``: the ledger against the files, itself (the hash chain) and dvc.lock.

Every problem names the run, the generation and the file. Nothing is trusted from
a cache: each artifact's md5 is recomputed from its bytes.
"""

from __future__ import annotations

import configparser
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelcollapse import io
from modelcollapse.lineage.ledger import (
    LedgerError,
    compute_content_hash,
    compute_record_hash,
    ledger_records,
    ledger_runs,
    parse_gen_path,
    read_record,
    record_path,
    rel,
)
from modelcollapse.paths import HUMAN_DIR, RUN_DIR

REL_TOL = 1e-9


@dataclass(frozen=True)
class Problem:
    run: str
    generation: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"run {self.run}" + (
            f" generation {self.generation}" if self.generation is not None else ""
        )
        return f"{where}: {self.path}: {self.message}"


@dataclass
class VerifyResult:
    runs: list[str]
    problems: list[Problem] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        c = self.counts
        lines = [
            f"runs: {len(self.runs)} ({', '.join(self.runs)})",
            f"ledger records: {c['records']} parsed, hash chain checked "
            f"({c['chain_links']} links, {c['parent_links']} parent references)",
            f"artifacts: {c['artifacts']} md5s recomputed ({c['artifact_bytes']} bytes)",
            f"human data: {c['human_files']} files' md5s recomputed",
        ]
        if c["dvc_runs"] or c["dvc_recomputed"]:
            lines.append(
                f"dvc.lock: {c['dvc_runs']} run directories checked file by file against "
                f"their .dir listing in the DVC cache ({c['dvc_files']} files), "
                f"{c['dvc_recomputed']} .dir hashes recomputed from the ledger, "
                f"{c['dvc_human_files']} human data files checked"
            )
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


# ------------------------------------------------------------------------ DVC


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
        lock = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise io.ArtifactError(f"dvc.lock does not parse: {exc}") from exc
    if not isinstance(lock, dict):
        raise io.ArtifactError("dvc.lock does not parse: expected a mapping")
    return lock


def _stage_out(lock: dict[str, Any], stage: str, path: str) -> dict[str, Any] | None:
    outs = ((lock.get("stages") or {}).get(stage) or {}).get("outs") or []
    return next((o for o in outs if isinstance(o, dict) and o.get("path") == path), None)


def _check_dvc(run: str, records: dict[int, dict], root: Path, lock: dict, res: VerifyResult):
    run_dir = RUN_DIR.format(run=run)
    out = _stage_out(lock, f"chain@{run}", run_dir)
    if out is None or "md5" not in out:
        res.notes.append(f"dvc.lock has no output {run_dir} (stage chain@{run}): skipped")
        return
    ledger: dict[str, tuple[int, str]] = {}
    for g, rec in records.items():
        for a in rec["artifacts"].values():
            ledger[a["path"].removeprefix(run_dir + "/")] = (g, a["md5"])
    lock_md5 = out["md5"]
    listing = read_dir_listing(root, lock_md5)
    if listing is None:
        computed = dir_md5({k: v[1] for k, v in ledger.items()})
        res.counts["dvc_recomputed"] += 1
        if computed != lock_md5:
            res.problems.append(
                Problem(
                    run,
                    None,
                    run_dir,
                    f"dvc.lock records {lock_md5} ({out.get('nfiles')} files) but the "
                    f"ledger's {len(ledger)} files hash to {computed}; the .dir listing is "
                    "not in the local DVC cache (dvc pull / dvc fetch it to name the file)",
                )
            )
    else:
        if dir_md5(listing) != lock_md5:
            res.problems.append(
                Problem(run, None, run_dir, f"the DVC cache's listing of {lock_md5} is corrupt")
            )
        res.counts["dvc_runs"] += 1
        res.counts["dvc_files"] += len(listing)
        for relpath in sorted(set(listing) | set(ledger)):
            parsed = parse_gen_path(f"{run_dir}/{relpath}")
            gen = parsed[1] if parsed else None
            path = f"{run_dir}/{relpath}"
            if relpath not in ledger:
                msg = f"dvc.lock lists it (md5 {listing[relpath]}) but no ledger record has it"
            elif relpath not in listing:
                msg = f"the ledger records it but dvc.lock's {run_dir} ({lock_md5}) lacks it"
            elif listing[relpath] != ledger[relpath][1]:
                msg = f"md5 {ledger[relpath][1]} in the ledger, {listing[relpath]} in dvc.lock"
            else:
                continue
            res.problems.append(Problem(run, gen, path, msg))
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
            res.problems.append(
                Problem(
                    run,
                    g,
                    path,
                    f"md5 {md5} in the ledger, {listings[human].get(relpath)} in dvc.lock",
                )
            )


# ---------------------------------------------------------------------- checks


def _check_file(run: str, g: int | None, entry: dict, root: Path, res: VerifyResult) -> None:
    path = root / entry["path"]
    if not path.exists():
        res.problems.append(Problem(run, g, entry["path"], "missing file"))
        return
    actual = io.file_md5(path)
    res.counts["artifact_bytes"] += path.stat().st_size
    if actual != entry["md5"]:
        res.problems.append(
            Problem(
                run,
                g,
                entry["path"],
                f"md5 mismatch: ledger {entry['md5']}, file {actual} "
                f"(size {path.stat().st_size}, ledger {entry['size']})",
            )
        )


def _path_length(rec: dict, records: dict[int, dict]) -> float | None:
    """Recompute the record's mean path length from its flattened composition."""
    comp = rec["composition"]
    total = comp["rows"]
    weighted = float(sum(comp["human_rows"].values()))
    for j, rows in comp["synthetic_rows"].items():
        if int(j) not in records:
            return None
        weighted += rows * (1.0 + records[int(j)]["human_share"]["path_length"])
    return weighted / total if total else None


def _check_chain(run: str, paths: dict[int, Path], records: dict[int, dict], root, res) -> None:
    for g in range(max(paths) + 1 if paths else 0):
        if g not in paths:
            res.problems.append(
                Problem(
                    run,
                    g,
                    rel(record_path(run, g, root), root),
                    "ledger record missing: hash chain broken at this generation",
                )
            )
    for g, rec in records.items():
        where = rel(paths[g], root)
        if rec["run"] != run or rec["generation"] != g:
            res.problems.append(
                Problem(
                    run, g, where, f"record says run {rec['run']} generation {rec['generation']}"
                )
            )
        if compute_content_hash(rec) != rec["content_hash"]:
            res.problems.append(
                Problem(
                    run,
                    g,
                    where,
                    "hash chain broken at this record: its content_hash does not match its "
                    "content (edited after it was written)",
                )
            )
        if compute_record_hash(rec) != rec.get("record_hash"):
            res.problems.append(
                Problem(
                    run,
                    g,
                    where,
                    "record_hash does not match the record's contents (edited after it was "
                    "written)",
                )
            )
        if g == 0 and rec["prev_content_hash"] is not None:
            res.problems.append(Problem(run, g, where, "generation 0 has a prev_content_hash"))
        elif g > 0 and g - 1 in records:
            res.counts["chain_links"] += 1
            if rec["prev_content_hash"] != records[g - 1]["content_hash"]:
                res.problems.append(
                    Problem(
                        run,
                        g,
                        where,
                        f"hash chain broken between generation {g - 1} and {g}: "
                        f"prev_content_hash {rec['prev_content_hash']} is not the content_hash "
                        f"{records[g - 1]['content_hash']} of {rel(paths[g - 1], root)}",
                    )
                )
        for p in rec["parents"]:
            res.counts["parent_links"] += 1
            parent = records.get(p["generation"]) if p["run"] == run else None
            if parent is None:
                try:
                    parent = read_record(root / p["record"], cached=False)
                except LedgerError:
                    res.problems.append(Problem(run, g, where, f"parent {p['record']} missing"))
                    continue
            if p["content_hash"] != parent["content_hash"]:
                res.problems.append(
                    Problem(run, g, where, f"parent {p['record']} changed since it was used")
                )
            recorded = {a["path"]: a["md5"] for a in parent["artifacts"].values()}
            for f in p["used"]:
                if recorded.get(f["path"]) != f["md5"]:
                    res.problems.append(
                        Problem(
                            run,
                            g,
                            where,
                            f"used {f['path']} md5 {f['md5']}, "
                            f"parent record says {recorded.get(f['path'])}",
                        )
                    )
        m = _path_length(rec, records)
        stored = rec["human_share"]["path_length"]
        if m is not None and abs(m - stored) > REL_TOL * max(1.0, abs(m)):
            res.problems.append(
                Problem(
                    run,
                    g,
                    where,
                    f"human share does not follow from the composition "
                    f"and the parents' shares (path length {stored}, recomputed {m})",
                )
            )


def verify(
    runs: list[str] | None = None,
    root: str | Path = ".",
    files: bool = True,
    dvc: bool = True,
) -> VerifyResult:
    """Check the ledger of ``runs`` (default: every run with records)."""
    root = Path(root)
    runs = list(runs) if runs else ledger_runs(root)
    res = VerifyResult(runs=runs)
    lock = None
    if dvc:
        try:
            lock = load_dvc_lock(root)
        except io.ArtifactError as exc:
            res.problems.append(Problem("*", None, "dvc.lock", str(exc)))
        if lock is None:
            res.notes.append("no dvc.lock: DVC check skipped")
    human_checked: dict[tuple[str, str], bool] = {}
    for run in runs:
        paths = ledger_records(run, root)
        if not paths:
            res.problems.append(Problem(run, None, f"lineage/{run}", "no ledger records"))
            continue
        records: dict[int, dict] = {}
        for g, p in paths.items():
            try:
                records[g] = read_record(p, cached=False)
            except io.ArtifactError as exc:
                res.problems.append(Problem(run, g, rel(p, root), str(exc)))
        res.counts["records"] += len(records)
        _check_chain(run, paths, records, root, res)
        if files:
            for g, rec in records.items():
                for entry in rec["artifacts"].values():
                    res.counts["artifacts"] += 1
                    _check_file(run, g, entry, root, res)
                for entry in rec["human_data"]["files"].values():
                    key = (entry["path"], entry["md5"])
                    if key not in human_checked:
                        human_checked[key] = True
                        res.counts["human_files"] += 1
                        _check_file(run, g, entry, root, res)
            run_dir = root / RUN_DIR.format(run=run)
            if run_dir.is_dir():
                for d in sorted(run_dir.glob("gen_*")):
                    parsed = parse_gen_path(rel(d / "x", root))
                    if parsed and parsed[1] not in paths:
                        res.problems.append(
                            Problem(
                                run,
                                parsed[1],
                                rel(d, root),
                                "artifacts without a ledger record (record deleted?)",
                            )
                        )
        if lock is not None and records:
            _check_dvc(run, records, root, lock, res)
    order = {run: i for i, run in enumerate(runs)}
    res.problems.sort(
        key=lambda p: (order.get(p.run, -1), -1 if p.generation is None else p.generation)
    )
    return res
