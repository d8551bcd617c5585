"""The lineage ledger: one git-tracked JSON record per generation, hash-chained.

This module builds and writes the ledger. ``lineage/<run>/gen_NNNN.json``
(:func:`record_generation`) holds what generation NNNN of a run was made of and
from: its artifacts (path, size, md5 -- the md5 DVC records), the human data, the
parent records, the training-set composition, the effective human share
(:func:`human_share`), the settings and seed, the step's key and code fingerprint
(``modelcollapse.keys``), and the circumstances of the build (the git commit of the
code that ran, the package versions: ``modelcollapse.lineage.environment``).

Each record's ``content_hash`` covers its deterministic fields, among them the
content hash of the generation before it and of each parent (:func:`parents_of`), so
editing or dropping a record breaks the chain from there on; its ``record_hash``
covers the whole record. The format, the paths, the hashes and the readers are in
``modelcollapse.lineage.records``; they are re-exported here, so
``from modelcollapse.lineage.ledger import read_record`` keeps working.

Someone who rewrites a record and every record after it, hashes and links recomputed,
keeps the chain whole. ``lineage/<run>/head.json`` (:func:`write_head`, written by the
metrics step) anchors it: the run's length and a digest of its records' content
hashes, a git-tracked DVC output whose md5 dvc.lock holds, so such a rewrite shows in
review as a changed head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelcollapse import io
from modelcollapse.lineage.environment import (
    OUTPUT_PATHS,
    PACKAGES,
    UNKNOWN,
    code_version,
    package_versions,
)
from modelcollapse.lineage.records import (
    CONTENT_FIELDS,
    HEAD_FIELDS,
    HEAD_NAME,
    LEDGER_DIR,
    REQUIRED_FIELDS,
    SCHEMA,
    LedgerError,
    canonical_json,
    compute_content_hash,
    compute_record_hash,
    content_view,
    head_digest,
    head_path,
    ledger_dir,
    ledger_records,
    ledger_runs,
    load_record,
    parse_gen_path,
    read_head,
    read_record,
    record_path,
    rel,
    sha256,
)
from modelcollapse.manifest import cached_md5, composition, read_manifest
from modelcollapse.paths import GEN_FILES, gen_file, human_file, human_files
from modelcollapse.settings import is_root, root_name

__all__ = [
    # built and written here
    "build_head",
    "build_record",
    "human_share",
    "parents_of",
    "record_generation",
    "write_head",
    # re-exported: the record format (records.py) and the build's circumstances
    # (environment.py), importable from here as before
    "CONTENT_FIELDS",
    "HEAD_FIELDS",
    "HEAD_NAME",
    "LEDGER_DIR",
    "OUTPUT_PATHS",
    "PACKAGES",
    "REQUIRED_FIELDS",
    "SCHEMA",
    "UNKNOWN",
    "LedgerError",
    "canonical_json",
    "code_version",
    "compute_content_hash",
    "compute_record_hash",
    "content_view",
    "head_digest",
    "head_path",
    "ledger_dir",
    "ledger_records",
    "ledger_runs",
    "load_record",
    "package_versions",
    "parse_gen_path",
    "read_head",
    "read_record",
    "record_path",
    "rel",
    "sha256",
]


# ---------------------------------------------------------------------- writing


def _file_entry(path: Path, root: Path) -> dict[str, Any]:
    if not path.exists():
        raise io.ArtifactError(f"missing artifact: {path}")
    return {"path": rel(path, root), "size": path.stat().st_size, "md5": cached_md5(path)}


def parents_of(
    run: str, generation: int, manifest: dict[str, Any], root: Path
) -> tuple[list[dict[str, Any]], dict[tuple[str, int], dict[str, Any]]]:
    """The records whose artifacts this generation's manifest uses directly: the
    record's ``parents`` entries, and (run, generation) -> parent record."""
    used: dict[tuple[str, int], list[dict[str, str]]] = {}
    for p in manifest["parts"]:
        if p.get("include") != "manifest" and p.get("source") == "human":
            continue
        where = parse_gen_path(p["path"])
        if where is None:
            raise LedgerError(
                f"run {run!r} generation {generation}: manifest part {p['path']} is "
                "neither human data nor a generation's artifact"
            )
        used.setdefault(where[:2], []).append({"path": p["path"], "md5": p["md5"]})
    parents, records = [], {}
    for (prun, pgen), files in sorted(used.items()):
        path = record_path(prun, pgen, root)
        if not path.exists():
            raise LedgerError(
                f"run {run!r} generation {generation} uses artifacts of run {prun!r} "
                f"generation {pgen}, whose ledger record {path} is missing; "
                "record generations in order"
            )
        rec = read_record(path)
        recorded = {a["path"]: a["md5"] for a in rec["artifacts"].values()}
        for f in files:
            if recorded.get(f["path"]) != f["md5"]:
                raise LedgerError(
                    f"run {run!r} generation {generation} used {f['path']} with md5 "
                    f"{f['md5']}, but its ledger record {path} says "
                    f"{recorded.get(f['path'])}: the parent record is stale"
                )
        records[(prun, pgen)] = rec
        parents.append(
            {
                "run": prun,
                "generation": pgen,
                "record": rel(path, root),
                "content_hash": rec["content_hash"],
                "used": sorted(files, key=lambda f: f["path"]),
            }
        )
    return parents, records


def human_share(
    manifest: dict[str, Any],
    comp: dict[str, Any],
    parent_records: dict[tuple[str, int], dict[str, Any]],
) -> dict[str, float]:
    """Direct and effective human share of a generation's training set.

    Follow each training row back to the human data: a human row is a path of one
    row; a synthetic row from generation j stands for itself plus one row of what
    model j learned from. ``path_length`` (m) is the mean length of those paths,
    ``m = (human rows + sum_j rows_j * (1 + m_j)) / rows`` (m = 1 at generation 0),
    and the effective share is the human rows' share of every row on them, ``1/m``.
    Mix with real fraction a: m_g = 1 + (1 - a) m_(g-1), share -> a; replace:
    share_g = 1 / (g + 1). Included manifests (accumulate) enter with their own
    rows and m, which is the same sum taken over their parts.
    """
    total = comp["rows"]
    weighted = 0.0
    counted = 0
    for p in manifest["parts"]:
        if p.get("include") == "manifest":
            prun, pgen, _ = parse_gen_path(p["path"])  # type: ignore[misc]
            rec = parent_records[(prun, pgen)]
            rows = rec["composition"]["rows"]
            weighted += rows * rec["human_share"]["path_length"]
        else:
            rows = sum(b - a for a, b in p["rows"])
            if p["source"] == "human":
                weighted += rows
            else:
                prun, pgen, _ = parse_gen_path(p["path"])  # type: ignore[misc]
                weighted += rows * (
                    1.0 + parent_records[(prun, pgen)]["human_share"]["path_length"]
                )
        counted += rows
    if counted != total or total == 0:
        raise LedgerError(
            f"run {manifest.get('run')!r} generation {manifest.get('generation')}: the "
            f"manifest's parts hold {counted} rows, its composition says {total}"
        )
    m = weighted / total
    return {"direct": float(comp["human_fraction"]), "effective": 1.0 / m, "path_length": m}


def build_record(
    run: str,
    generation: int,
    settings: dict[str, Any],
    root: str | Path = ".",
    key: str | None = None,
    code_fingerprint: str | None = None,
) -> dict[str, Any]:
    """The ledger record of a generation whose five artifacts exist (not written).

    ``key`` and ``code_fingerprint`` are the step's (``modelcollapse.keys``)."""
    root = Path(root)
    manifest_path = gen_file(run, generation, "train.json", root)
    manifest = read_manifest(manifest_path)
    comp = manifest.get("composition") or composition(manifest, root)
    parents, parent_records = parents_of(run, generation, manifest, root)
    # A run's generations descend from its root (the generation 0 it shares with
    # every run whose generation-0 settings are its own); a root from nothing.
    chain_root = None if is_root(run) else root_name(settings)
    prev_hash = None
    if generation > 0:
        prev_chain = chain_root if generation == 1 else run
        assert prev_chain is not None  # a root is a generation 0
        prev = parent_records.get((prev_chain, generation - 1))
        if prev is None:
            prev_path = record_path(prev_chain, generation - 1, root)
            if not prev_path.exists():
                raise LedgerError(
                    f"run {run!r} generation {generation}: the ledger record of generation "
                    f"{generation - 1} ({prev_path}) is missing; record generations in order"
                )
            prev = read_record(prev_path)
        prev_hash = prev["content_hash"]
    source = settings["human"]
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "run": run,
        "generation": generation,
        "key": key,
        "code_fingerprint": code_fingerprint,
        "artifacts": {
            name: _file_entry(gen_file(run, generation, name, root), root) for name in GEN_FILES
        },
        "human_data": {
            "source": source,
            "files": {
                name: _file_entry(human_file(source, name, root), root)
                for name in human_files(source, root)
            },
        },
        "parents": parents,
        "composition": comp,
        "human_share": human_share(manifest, comp, parent_records),
        "settings": settings,
        "seed": settings.get("seed"),
        "root": chain_root,
        "code": code_version(),
        "packages": package_versions(),
        "prev_content_hash": prev_hash,
    }
    record["content_hash"] = compute_content_hash(record)
    record["record_hash"] = compute_record_hash(record)
    return record


def record_generation(
    run: str,
    generation: int,
    settings: dict[str, Any],
    root: str | Path = ".",
    key: str | None = None,
    code_fingerprint: str | None = None,
) -> dict[str, Any]:
    """Write ``lineage/<run>/gen_NNNN.json`` for a finished generation; return the record.

    Call after all five artifacts of the generation are written; the record of the
    previous generation (and of every generation whose samples the training set
    uses) must exist. The write is atomic.
    """
    record = build_record(run, generation, settings, root, key, code_fingerprint)
    io.write_json(record_path(run, generation, root), record)
    return record


# ------------------------------------------------------------------------ head


def build_head(
    run: str, generations: int, chain_root: str, root: str | Path = "."
) -> dict[str, Any]:
    """The head of a run's ledger: its length, its root (``chain_root``, whose record is
    its generation 0) and a digest of every record's content hash, in order, generation
    0's included (not written)."""
    hashes = [
        load_record(chain_root if g == 0 else run, g, root)["content_hash"]
        for g in range(generations)
    ]
    return {
        "schema": SCHEMA,
        "run": run,
        "root": chain_root,
        "generations": generations,
        "head_generation": generations - 1 if hashes else None,
        "head_content_hash": hashes[-1] if hashes else None,
        "digest": head_digest(hashes),
    }


def write_head(
    run: str, generations: int, chain_root: str, root: str | Path = "."
) -> dict[str, Any]:
    """Write ``lineage/<run>/head.json`` for generations 0..G-1; return it.

    The head anchors the ledger in review: rewriting any record consistently (hashes
    and chain recomputed) changes the digest, so head.json changes in the diff, and
    its md5 in dvc.lock. Content hashes, not record hashes: a byte-identical rebuild
    at another commit leaves the head unchanged. The write is atomic.
    """
    head = build_head(run, generations, chain_root, root)
    io.write_json(head_path(run, root), head)
    return head
