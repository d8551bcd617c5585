"""``lineage verify``: the ledger against the files, itself (the hash chain), the
fields it derives, its head (head.json), params.yaml and dvc.lock.

Every problem names the run, the generation and the file. Nothing is trusted from
a cache: each artifact's md5 is recomputed from its bytes. Every field a record
derives is derived again: its composition, parents and human share from the
generation's train.json and the parents' records, its settings and key from
model.json, its settings also from params.yaml; a consistent rewrite of records
changes the digest of the run's head.json, whose md5 dvc.lock holds. What this
cannot catch is in docs/lineage.md ("What verify guarantees").

This module holds the entry point and the checks of the chain, the head and the
files; derived.py re-derives the fields, dvclock.py checks dvc.lock.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelcollapse import io
from modelcollapse.lineage.derived import (
    _check_derived,
    _check_params,
    _close,
    _load_params,
    _Manifests,
)
from modelcollapse.lineage.dvclock import _check_dvc, _check_dvc_head, load_dvc_lock
from modelcollapse.lineage.records import (
    SCHEMA,
    LedgerError,
    compute_content_hash,
    compute_record_hash,
    head_digest,
    head_path,
    ledger_records,
    ledger_roots,
    ledger_runs,
    parse_gen_path,
    read_head,
    read_record,
    record_path,
    rel,
)
from modelcollapse.paths import chain_dir
from modelcollapse.settings import is_root


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
        runs = [r for r in self.runs if not is_root(r)]
        roots = [r for r in self.runs if is_root(r)]
        lines = [
            f"runs: {len(runs)} ({', '.join(runs)})"
            + (
                f"; roots (shared generations 0): {len(roots)} ({', '.join(roots)})"
                if roots
                else ""
            ),
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
            lines.insert(
                3, f"params.yaml: settings of {c['params_runs']} run(s) and root(s) compared"
            )
        if c["dvc_runs"] or c["dvc_recomputed"] or c["dvc_heads"]:
            lines.append(
                f"dvc.lock: {c['dvc_runs']} run and root directories checked file by file against "
                f"their .dir listing in the DVC cache ({c['dvc_files']} files), "
                f"{c['dvc_recomputed']} .dir hashes recomputed from the ledger, "
                f"{c['dvc_human_files']} human data files checked, "
                f"{c['dvc_heads']} head.json md5s compared"
            )
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


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
    run_dir = root / chain_dir(run)
    for d in sorted(run_dir.glob("gen_*")) if run_dir.is_dir() else []:
        parsed = parse_gen_path(rel(d / "x", root))
        if parsed and parsed[1] not in paths:
            res.fail(
                run, parsed[1], rel(d, root), "artifacts without a ledger record (record deleted?)"
            )


def _path_length(rec: dict, records: dict[int, dict]) -> float | None:
    """(``records``: the chain's, generation 0 its root's.)"""
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
    run: str,
    paths: dict[int, Path],
    records: dict[int, dict],
    root,
    res,
    anchored: int = 0,
    linked: dict[int, dict] | None = None,
) -> None:
    """``anchored``: the generations head.json counts, each of which needs a record.
    ``linked``: ``records`` and, for a run, its root's record as generation 0 (a run's
    own records start at generation 1; a root is one record, generation 0)."""
    linked = records if linked is None else linked
    first = 0 if is_root(run) else 1
    for g in range(first, max(max(paths) + 1 if paths else 0, anchored)):
        if g not in paths:
            where = rel(record_path(run, g, root), root)
            res.fail(run, g, where, "ledger record missing: hash chain broken at this generation")
    for g, rec in records.items():
        where = rel(paths[g], root)
        if g == 0 and not is_root(run):
            res.fail(
                run,
                g,
                where,
                "a run's own generation 0, from before roots: its generation 0 "
                "is its root's now (rebuild the run)",
            )
            continue
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
        elif g > 0 and g - 1 in linked:
            res.counts["chain_links"] += 1
            if rec["prev_content_hash"] != linked[g - 1]["content_hash"]:
                before = rel(paths[g - 1], root) if g - 1 in paths else f"its root {rec['root']}"
                msg = (
                    f"hash chain broken between generation {g - 1} and {g}: "
                    f"prev_content_hash {rec['prev_content_hash']} is not the content_hash "
                    f"{linked[g - 1]['content_hash']} of {before}"
                )
                res.fail(run, g, where, msg)
        _check_parents(run, g, rec, where, records, root, res)
        m = _path_length(rec, linked)
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


# ---------------------------------------------------------------------- roots


def _root_of(run: str, head: dict | None, records: dict[int, dict]) -> str | None:
    """The root a run's records (or its head) name as its generation 0."""
    named = [head.get("root")] if head else []
    named += [rec.get("root") for rec in records.values()]
    return next((r for r in named if isinstance(r, str) and is_root(r)), None)


def _roots_of(runs: list[str], root: Path) -> list[str]:
    """The roots to check with ``runs``: every root in the ledger when ``runs`` is every
    run, else those the runs start from."""
    if set(runs) == set(ledger_runs(root)):
        found = set(ledger_roots(root))
    else:
        found = set()
    for run in runs:
        try:
            head = read_head(head_path(run, root)) if head_path(run, root).exists() else None
        except LedgerError:
            head = None
        own = ledger_records(run, root)
        first = {}
        if own:
            try:
                first = {min(own): read_record(own[min(own)])}
            except LedgerError:
                pass
        named = _root_of(run, head, first)
        if named and ledger_records(named, root):
            found.add(named)
    return sorted(found)


def _link_root(run: str, head, records: dict, linked: dict, root: Path, res) -> None:
    """Put the run's root's record in ``linked`` as generation 0; a run whose records
    disagree on their root, or whose root has no record, is a problem."""
    named = {rec.get("root") for rec in records.values() if rec.get("generation", 0) > 0}
    if head is not None:
        named.add(head.get("root"))
    named.discard(None)
    if len(named) > 1:
        res.fail(run, None, f"lineage/{run}", f"its records name several roots: {sorted(named)}")
        return
    if not named:
        return
    (chain_root,) = named
    path = record_path(chain_root, 0, root)
    try:
        linked[0] = read_record(path, cached=False)
    except LedgerError as exc:
        res.fail(run, 0, rel(path, root), f"its root's record (generation 0): {exc}")


# ---------------------------------------------------------------------- verify


def verify(
    runs: list[str] | None = None,
    root: str | Path = ".",
    files: bool = True,
    dvc: bool = True,
) -> VerifyResult:
    """Check the ledger of ``runs`` (default: every run with records) and of the roots
    they start from (every root, by default), each root once.

    ``files=False`` (``--chain-only``) leaves out what needs the artifacts: their md5s
    and the fields derived from train.json and model.json. ``dvc=False``: dvc.lock."""
    root = Path(root)
    runs = list(runs) if runs else ledger_runs(root)
    roots = _roots_of(runs, root)
    res = VerifyResult(runs=runs + roots)
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
    for run in runs + roots:
        paths = ledger_records(run, root)
        if not paths and not (is_root(run) or head_path(run, root).exists()):
            res.fail(run, None, f"lineage/{run}", "no ledger records")
            continue
        records: dict[int, dict] = {}
        for g, p in paths.items():
            try:
                records[g] = read_record(p, cached=False)
            except io.ArtifactError as exc:
                res.fail(run, g, rel(p, root), str(exc))
        res.counts["records"] += len(records)
        head = None if is_root(run) else _read_head(run, root, res)
        linked = dict(records)
        if not is_root(run):
            _link_root(run, head, records, linked, root, res)
        _check_chain(run, paths, records, root, res, head["generations"] if head else 0, linked)
        _check_derived(run, paths, records, files, manifests, res)
        _check_params(run, paths, records, params, head, root, res)
        if head is not None:
            _check_head(run, head, linked, root, res)
        if files:
            _check_files(run, paths, records, root, human_checked, res)
        if lock is not None and records:
            _check_dvc(run, records, root, lock, res)
            if not is_root(run):
                _check_dvc_head(run, root, lock, res)
    order = {run: i for i, run in enumerate(runs)}
    res.problems.sort(
        key=lambda p: (order.get(p.run, -1), -1 if p.generation is None else p.generation)
    )
    return res
