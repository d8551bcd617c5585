"""``lineage verify``: the ledger against the files, itself (the hash chain), the
fields it derives, its head (head.json), params.yaml and dvc.lock.

Every problem names the run, the generation and the file. Nothing is trusted from
a cache: each artifact's md5 is recomputed from its bytes. Every field a record
derives is derived again: its composition, parents and human share from the
generation's train.json and the parents' records, its settings and key from
model.json, its settings also from params.yaml; a consistent rewrite of records
changes the digest of the run's head.json, whose md5 dvc.lock holds. What this
cannot catch is in docs/lineage.md ("What verify guarantees").
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
    SCHEMA,
    LedgerError,
    compute_content_hash,
    compute_record_hash,
    head_digest,
    head_path,
    human_share,
    ledger_records,
    ledger_runs,
    parents_of,
    parse_gen_path,
    read_head,
    read_record,
    record_path,
    rel,
)
from modelcollapse.manifest import composition, read_manifest
from modelcollapse.paths import HUMAN_DIR, RUN_DIR, gen_file

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

    def fail(self, run: str, generation: int | None, path: str, message: str) -> None:
        self.problems.append(Problem(run, generation, path, message))

    def summary(self) -> str:
        c = self.counts
        lines = [
            f"runs: {len(self.runs)} ({', '.join(self.runs)})",
            f"ledger records: {c['records']} parsed, hash chain checked "
            f"({c['chain_links']} links, {c['parent_links']} parent references)",
            f"derived fields: {c['manifests']} compositions, parents and human shares "
            f"re-derived from train.json, {c['models']} settings and keys compared with "
            "model.json",
            f"heads: {c['heads']} head.json digests recomputed",
            f"artifacts: {c['artifacts']} md5s recomputed ({c['artifact_bytes']} bytes)",
            f"human data: {c['human_files']} files' md5s recomputed",
        ]
        if c["params_runs"]:
            lines.insert(3, f"params.yaml: settings of {c['params_runs']} run(s) compared")
        if c["dvc_runs"] or c["dvc_recomputed"] or c["dvc_heads"]:
            lines.append(
                f"dvc.lock: {c['dvc_runs']} run directories checked file by file against "
                f"their .dir listing in the DVC cache ({c['dvc_files']} files), "
                f"{c['dvc_recomputed']} .dir hashes recomputed from the ledger, "
                f"{c['dvc_human_files']} human data files checked, "
                f"{c['dvc_heads']} head.json md5s compared"
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
            msg = (
                f"dvc.lock records {lock_md5} ({out.get('nfiles')} files) but the "
                f"ledger's {len(ledger)} files hash to {computed}; the .dir listing is "
                "not in the local DVC cache (dvc pull / dvc fetch it to name the file)"
            )
            res.fail(run, None, run_dir, msg)
    else:
        if dir_md5(listing) != lock_md5:
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


# ---------------------------------------------------------------------- chain


def _check_file(run: str, g: int | None, entry: dict, root: Path, res: VerifyResult) -> None:
    path = root / entry["path"]
    if not path.exists():
        res.fail(run, g, entry["path"], "missing file")
        return
    actual = io.file_md5(path)
    res.counts["artifact_bytes"] += path.stat().st_size
    if actual != entry["md5"]:
        msg = (
            f"md5 mismatch: ledger {entry['md5']}, file {actual} "
            f"(size {path.stat().st_size}, ledger {entry['size']})"
        )
        res.fail(run, g, entry["path"], msg)


def _check_files(run, paths, records, root, human_checked, res) -> None:
    for g, rec in records.items():
        for entry in rec["artifacts"].values():
            res.counts["artifacts"] += 1
            _check_file(run, g, entry, root, res)
        for entry in rec["human_data"]["files"].values():
            if (entry["path"], entry["md5"]) not in human_checked:
                human_checked.add((entry["path"], entry["md5"]))
                res.counts["human_files"] += 1
                _check_file(run, g, entry, root, res)
    run_dir = root / RUN_DIR.format(run=run)
    for d in sorted(run_dir.glob("gen_*")) if run_dir.is_dir() else []:
        parsed = parse_gen_path(rel(d / "x", root))
        if parsed and parsed[1] not in paths:
            res.fail(
                run, parsed[1], rel(d, root), "artifacts without a ledger record (record deleted?)"
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


def _check_parents(run: str, g: int, rec: dict, where: str, records, root, res) -> None:
    for p in rec["parents"]:
        res.counts["parent_links"] += 1
        parent = records.get(p["generation"]) if p["run"] == run else None
        if parent is None:
            try:
                parent = read_record(root / p["record"], cached=False)
            except LedgerError:
                res.fail(run, g, where, f"parent {p['record']} missing")
                continue
        if p["content_hash"] != parent["content_hash"]:
            res.fail(run, g, where, f"parent {p['record']} changed since it was used")
        recorded = {a["path"]: a["md5"] for a in parent["artifacts"].values()}
        for f in p["used"]:
            if recorded.get(f["path"]) != f["md5"]:
                msg = (
                    f"used {f['path']} md5 {f['md5']}, parent record says {recorded.get(f['path'])}"
                )
                res.fail(run, g, where, msg)


def _check_chain(
    run: str, paths: dict[int, Path], records: dict[int, dict], root, res, anchored: int = 0
) -> None:
    """``anchored``: the generations head.json counts, each of which needs a record."""
    for g in range(max(max(paths) + 1 if paths else 0, anchored)):
        if g not in paths:
            where = rel(record_path(run, g, root), root)
            res.fail(run, g, where, "ledger record missing: hash chain broken at this generation")
    for g, rec in records.items():
        where = rel(paths[g], root)
        if rec["run"] != run or rec["generation"] != g:
            res.fail(run, g, where, f"record says run {rec['run']} generation {rec['generation']}")
        if compute_content_hash(rec) != rec["content_hash"]:
            msg = (
                "hash chain broken at this record: its content_hash does not match its "
                "content (edited after it was written)"
            )
            res.fail(run, g, where, msg)
        if compute_record_hash(rec) != rec.get("record_hash"):
            msg = "record_hash does not match the record's contents (edited after it was written)"
            res.fail(run, g, where, msg)
        if g == 0 and rec["prev_content_hash"] is not None:
            res.fail(run, g, where, "generation 0 has a prev_content_hash")
        elif g > 0 and g - 1 in records:
            res.counts["chain_links"] += 1
            if rec["prev_content_hash"] != records[g - 1]["content_hash"]:
                msg = (
                    f"hash chain broken between generation {g - 1} and {g}: "
                    f"prev_content_hash {rec['prev_content_hash']} is not the content_hash "
                    f"{records[g - 1]['content_hash']} of {rel(paths[g - 1], root)}"
                )
                res.fail(run, g, where, msg)
        _check_parents(run, g, rec, where, records, root, res)
        m = _path_length(rec, records)
        stored = rec["human_share"]["path_length"]
        if m is not None and not _close(m, stored):
            msg = (
                "human share does not follow from the composition and the parents' "
                f"shares (path length {stored}, recomputed {m})"
            )
            res.fail(run, g, where, msg)


# ---------------------------------------------------------------------- head


def _read_head(run: str, root: Path, res: VerifyResult) -> dict[str, Any] | None:
    path = head_path(run, root)
    where = rel(path, root)
    if not path.exists():
        msg = (
            "missing: the run's metrics step writes it (Snakemake rule collect_metrics, "
            f"DVC stage chain@{run}); run it and commit head.json"
        )
        res.fail(run, None, where, msg)
        return None
    try:
        head = read_head(path)
    except LedgerError as exc:
        res.fail(run, None, where, str(exc))
        return None
    if (head["schema"], head["run"]) != (SCHEMA, run):
        res.fail(run, None, where, f"says schema {head['schema']} run {head['run']}")
    return head


def _check_head(run: str, head: dict, records: dict[int, dict], root: Path, res) -> None:
    """The digest of records 0..G-1 as they are against the one head.json holds."""
    where = rel(head_path(run, root), root)
    count = head["generations"]
    beyond = sorted(g for g in records if g >= count)
    if beyond:
        res.notes.append(
            f"run {run}: generation(s) {beyond[0]}-{beyond[-1]} recorded beyond head.json's "
            f"{count} (generations lowered?): not anchored"
        )
    if any(g not in records for g in range(count)):
        return  # each missing or unreadable record is a problem of its own
    res.counts["heads"] += 1
    hashes = [records[g]["content_hash"] for g in range(count)]
    digest = head_digest(hashes)
    last = (count - 1, hashes[-1]) if hashes else (None, None)
    if digest != head["digest"]:
        msg = (
            f"digest {head['digest']} is not {digest}, the digest of the content hashes of "
            f"records 0-{count - 1}: records were rewritten after head.json was written "
            "(lineage diff shows which) or it was edited; after a rebuild, run the metrics step"
        )
        res.fail(run, None, where, msg)
    elif (head["head_generation"], head["head_content_hash"]) != last:
        msg = (
            f"names generation {head['head_generation']} content hash "
            f"{head['head_content_hash']}, the ledger {last[0]} {last[1]}"
        )
        res.fail(run, None, where, msg)


# ------------------------------------------------------------ derived fields


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _differences(ours: Any, theirs: Any, ours_name: str, theirs_name: str) -> str:
    """``key: <ours_name> X, <theirs_name> Y`` for each top-level key that differs."""
    if not isinstance(ours, dict) or not isinstance(theirs, dict):
        return f"{ours_name} {_short(ours)}, {theirs_name} {_short(theirs)}"
    keys = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    return "; ".join(
        f"{k}: {ours_name} {_short(ours.get(k))}, {theirs_name} {_short(theirs.get(k))}"
        for k in keys
    )


def _close(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if not isinstance(a, numbers) or not isinstance(b, numbers):
        return False
    return abs(a - b) <= REL_TOL * max(1.0, abs(a), abs(b))


def _own_fields(run: str, g: int, rec: dict) -> list[str]:
    """What contradicts the rest of the same record: the seed, the artifact paths,
    the composition's sums, the shares."""
    out = []
    if rec["seed"] != rec["settings"].get("seed"):
        out.append(f"seed {rec['seed']} is not the settings' seed {rec['settings'].get('seed')}")
    for name, entry in rec["artifacts"].items():
        if entry["path"] != gen_file(run, g, name).as_posix():
            out.append(f"artifact {name} has path {entry['path']}")
    comp, share = rec["composition"], rec["human_share"]
    human = sum(comp["human_rows"].values())
    synthetic = sum(comp["synthetic_rows"].values())
    if comp["rows"] != human + synthetic or comp["rows"] <= 0:
        out.append(f"composition: rows {comp['rows']} is not {human} human + {synthetic} synthetic")
    elif not _close(comp["human_fraction"], human / comp["rows"]):
        out.append(
            f"composition: human_fraction {comp['human_fraction']} is not {human} / {comp['rows']}"
        )
    if not _close(share["direct"], comp["human_fraction"]):
        out.append(
            f"human share: direct {share['direct']} is not the composition's human fraction "
            f"{comp['human_fraction']}"
        )
    m = share["path_length"]  # a mean of path lengths, each at least one row
    if not (isinstance(m, int | float) and m >= 1 and _close(share["effective"], 1.0 / m)):
        out.append(f"human share: effective {share['effective']} is not 1 / path_length {m}")
    return out


def _as_parts(comp: dict[str, Any]) -> list[dict[str, Any]]:
    """Row parts that :func:`modelcollapse.manifest.composition` counts back to ``comp``."""
    human = [
        {"source": "human", "path": k, "rows": [[0, n]]} for k, n in comp["human_rows"].items()
    ]
    return human + [
        {"source": "synthetic", "origin_generation": int(j), "rows": [[0, n]]}
        for j, n in comp["synthetic_rows"].items()
    ]


class _Manifests:
    """train.json files, each read once, and their compositions.

    A composition is :func:`modelcollapse.manifest.composition` of the manifest's own
    parts plus the row counts of each manifest it includes, computed once (accumulate
    includes every earlier manifest: flattening each anew would read O(G^2) files)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._manifests: dict[str, dict[str, Any]] = {}
        self._compositions: dict[str, dict[str, Any]] = {}

    def manifest(self, path: str) -> dict[str, Any]:
        if path not in self._manifests:
            self._manifests[path] = read_manifest(self.root / path)
        return self._manifests[path]

    def composition(self, path: str) -> dict[str, Any]:
        stack, opened = [(path, False)], set()
        while stack:  # depth first, iteratively: accumulate chains can be thousands deep
            current, expanded = stack.pop()
            if current in self._compositions:
                continue
            parts = self.manifest(current)["parts"]
            includes = [p["path"] for p in parts if p.get("include") == "manifest"]
            if expanded:
                counted = [p for p in parts if p.get("include") != "manifest"]
                for i in includes:
                    counted += _as_parts(self._compositions[i])
                self._compositions[current] = composition({"parts": counted}, self.root)
            elif current in opened:
                raise io.ArtifactError(f"manifest {current} includes itself")
            else:
                opened.add(current)
                stack += [(current, True)] + [(i, False) for i in includes]
        return self._compositions[path]


def _check_train(run: str, g: int, rec: dict, where: str, manifests: _Manifests, res) -> None:
    """Composition, parents and human share, derived again from train.json."""
    train = gen_file(run, g, "train.json").as_posix()
    if not (manifests.root / train).exists():
        return  # a missing file is a problem of its own
    res.counts["manifests"] += 1
    try:
        manifest = manifests.manifest(train)
        comp = manifests.composition(train)
        parents, parent_records = parents_of(run, g, manifest, manifests.root)
        share = human_share(manifest, comp, parent_records)
    except (io.ArtifactError, KeyError, TypeError, ValueError) as exc:
        res.fail(run, g, train, f"the record's composition cannot be derived from it: {exc}")
        return
    if manifest.get("composition") != comp:
        diff = _differences(manifest.get("composition"), comp, "stored", "parts")
        res.fail(run, g, train, f"its composition does not follow from its parts ({diff})")
    if rec["composition"] != comp:
        diff = _differences(rec["composition"], comp, "record", "train.json")
        res.fail(run, g, where, f"composition differs from {train}'s parts ({diff})")
    ours = [{k: v for k, v in p.items() if k != "content_hash"} for p in rec["parents"]]
    theirs = [{k: v for k, v in p.items() if k != "content_hash"} for p in parents]
    if ours != theirs:
        msg = (
            f"parents differ from those {train} uses: record {_short(ours)}, "
            f"train.json {_short(theirs)}"
        )
        res.fail(run, g, where, msg)
    if not all(_close(rec["human_share"].get(k), v) for k, v in share.items()):
        diff = _differences(rec["human_share"], share, "record", "derived")
        msg = f"human share differs from the one {train} and the parents' records give ({diff})"
        res.fail(run, g, where, msg)


def _check_model(run: str, g: int, rec: dict, where: str, root: Path, res) -> None:
    """Run, generation, settings and key against model.json (the checkpoint's own)."""
    model = gen_file(run, g, "model.json").as_posix()
    if not (root / model).exists():
        return
    res.counts["models"] += 1
    meta = io.read_json(root / model)
    extra = meta.get("extra") if isinstance(meta, dict) else None
    if not isinstance(extra, dict):
        res.fail(run, g, model, "holds no run, generation, settings and key ('extra')")
        return
    if (extra.get("run"), extra.get("generation")) != (run, g):
        res.fail(run, g, model, f"says run {extra.get('run')} generation {extra.get('generation')}")
    if rec["settings"] != extra.get("settings"):
        diff = _differences(rec["settings"], extra.get("settings"), "record", "model.json")
        res.fail(run, g, where, f"settings differ from {model}'s ({diff})")
    if rec["key"] != extra.get("key"):
        res.fail(run, g, where, f"key {rec['key']} differs from {model}'s {extra.get('key')}")


def _check_derived(run: str, paths, records, files: bool, manifests: _Manifests, res) -> None:
    for g, rec in records.items():
        where = rel(paths[g], manifests.root)
        try:
            for message in _own_fields(run, g, rec):
                res.fail(run, g, where, message)
            if files:
                _check_train(run, g, rec, where, manifests, res)
                _check_model(run, g, rec, where, manifests.root, res)
        except io.ArtifactError as exc:
            res.fail(run, g, where, str(exc))
        except (KeyError, TypeError, AttributeError, ValueError, ZeroDivisionError) as exc:
            res.fail(run, g, where, f"malformed record: {type(exc).__name__}: {exc}")


# ------------------------------------------------------------------ params.yaml


def _load_params(root: Path, res: VerifyResult) -> Any:
    """The validated params.yaml at the root, or None (absent, or invalid: a problem)."""
    from modelcollapse.config import load_params  # schemas and families: only here

    path = root / "params.yaml"
    if not path.exists():
        res.notes.append("no params.yaml: settings checked against model.json only")
        return None
    try:
        return load_params(path)
    except (ValueError, OSError) as exc:  # ConfigError is a ValueError
        res.fail("*", None, "params.yaml", f"invalid, no settings checked against it: {exc}")
        return None


def _check_params(run: str, paths, records, params, head, root: Path, res) -> None:
    """Settings and length against params.yaml: a difference is a run out of date or
    an edit. Generations beyond its ``generations`` (left from a larger count) are not
    compared."""
    if params is None:
        return
    if run not in params.runs:
        res.notes.append(f"run {run} is not in params.yaml: its settings are not compared")
        return
    res.counts["params_runs"] += 1
    expected = params.generation_settings(run)
    count = params.run(run)["generations"]
    for g, rec in records.items():
        if g < count and rec["settings"] != expected:
            msg = (
                f"settings differ from params.yaml's "
                f"({_differences(rec['settings'], expected, 'record', 'params.yaml')}): "
                "the run is out of date with params.yaml (rebuild it) or the record was edited"
            )
            res.fail(run, g, rel(paths[g], root), msg)
    if head is not None and head["generations"] != count:
        msg = (
            f"anchors {head['generations']} generations, params.yaml asks for {count}: the "
            "run is out of date with params.yaml (run the workflow) or head.json was edited"
        )
        res.fail(run, None, rel(head_path(run, root), root), msg)


# ---------------------------------------------------------------------- verify


def verify(
    runs: list[str] | None = None,
    root: str | Path = ".",
    files: bool = True,
    dvc: bool = True,
) -> VerifyResult:
    """Check the ledger of ``runs`` (default: every run with records).

    ``files=False`` (``--chain-only``) leaves out what needs the artifacts: their md5s
    and the fields derived from train.json and model.json. ``dvc=False``: dvc.lock."""
    root = Path(root)
    runs = list(runs) if runs else ledger_runs(root)
    res = VerifyResult(runs=runs)
    lock = None
    if dvc:
        try:
            lock = load_dvc_lock(root)
        except io.ArtifactError as exc:
            res.fail("*", None, "dvc.lock", str(exc))
        if lock is None:
            res.notes.append("no dvc.lock: DVC check skipped")
    params = _load_params(root, res)
    manifests = _Manifests(root)
    human_checked: set[tuple[str, str]] = set()
    for run in runs:
        paths = ledger_records(run, root)
        if not paths:
            res.fail(run, None, f"lineage/{run}", "no ledger records")
            continue
        records: dict[int, dict] = {}
        for g, p in paths.items():
            try:
                records[g] = read_record(p, cached=False)
            except io.ArtifactError as exc:
                res.fail(run, g, rel(p, root), str(exc))
        res.counts["records"] += len(records)
        head = _read_head(run, root, res)
        _check_chain(run, paths, records, root, res, head["generations"] if head else 0)
        _check_derived(run, paths, records, files, manifests, res)
        _check_params(run, paths, records, params, head, root, res)
        if head is not None:
            _check_head(run, head, records, root, res)
        if files:
            _check_files(run, paths, records, root, human_checked, res)
        if lock is not None and records:
            _check_dvc(run, records, root, lock, res)
            _check_dvc_head(run, root, lock, res)
    order = {run: i for i, run in enumerate(runs)}
    res.problems.sort(
        key=lambda p: (order.get(p.run, -1), -1 if p.generation is None else p.generation)
    )
    return res
