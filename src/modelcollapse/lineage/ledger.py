"""The lineage ledger: one git-tracked JSON record per generation, hash-chained.

``lineage/<run>/gen_NNNN.json`` holds what generation NNNN of a run was made of and
from: its artifacts (path, size, md5 -- the md5 DVC records), the human data, the
parent records, the training-set composition, the effective human share, the
settings and seed, the step's key and code fingerprint (``modelcollapse.keys``), and
the circumstances of the build (the git commit of the code that ran, the package
versions).

Two hashes make the ledger tamper-evident and reproducible:

* ``content_hash``: sha256 of the canonical JSON of the deterministic fields
  (:data:`CONTENT_FIELDS`), among them ``prev_content_hash``, the content hash of the
  generation before it, and each parent's content hash. Re-running a deterministic
  generation reproduces it, whatever the commit, machine or time, so the chain survives
  rebuilds; editing or dropping a record breaks it from there on.
* ``record_hash``: sha256 of the canonical JSON of the whole record except itself:
  the circumstances (commit, packages) cannot be edited unnoticed either.

Someone who rewrites a record and every record after it, hashes and links recomputed,
keeps the chain whole. ``lineage/<run>/head.json`` (:func:`write_head`, written by the
metrics step) anchors it: the run's length and a digest of its records' content
hashes, a git-tracked DVC output whose md5 dvc.lock holds, so such a rewrite shows in
review as a changed head.

Records are JSON only: reading them never executes anything.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from modelcollapse import io
from modelcollapse.manifest import cached_md5, composition, read_manifest
from modelcollapse.paths import GEN_FILES, gen_file, gen_tag, human_file, human_files

SCHEMA = "modelcollapse.lineage/2"
LEDGER_DIR = "lineage"
UNKNOWN = "unknown"

# Fields that depend only on the data, the settings, the seed and the code's content
# (content_hash); the rest of a record are the circumstances of the build.
CONTENT_FIELDS = (
    "schema",
    "run",
    "generation",
    "key",
    "code_fingerprint",
    "artifacts",
    "human_data",
    "parents",
    "composition",
    "human_share",
    "settings",
    "seed",
    "prev_content_hash",
)
REQUIRED_FIELDS = (*CONTENT_FIELDS, "code", "packages", "content_hash")
PACKAGES = (
    "modelcollapse",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "safetensors",
    "threadpoolctl",
    "snakemake",
    "dvc",
    "prov",
)
# Paths the workflow itself writes while it runs: they do not make the code dirty.
OUTPUT_PATHS = (LEDGER_DIR, "data", "results", "reports", "logs", ".snakemake", "dvc.lock")

# lineage/<run>/head.json: the run's length and a digest of its records (write_head).
HEAD_NAME = "head.json"
HEAD_FIELDS = ("schema", "run", "generations", "head_generation", "head_content_hash", "digest")

_RECORD_NAME = re.compile(r"^gen_(\d+)\.json$")
_GEN_PATH = re.compile(r"^data/runs/(?P<run>[^/]+)/gen_(?P<gen>\d+)/(?P<name>[^/]+)$")


class LedgerError(io.ArtifactError):
    """A ledger record is missing, does not parse, or contradicts another record."""


# --------------------------------------------------------------------------- paths


def ledger_dir(run: str, root: str | Path = ".") -> Path:
    return Path(root) / LEDGER_DIR / run


def record_path(run: str, generation: int, root: str | Path = ".") -> Path:
    return ledger_dir(run, root) / f"gen_{gen_tag(generation)}.json"


def head_path(run: str, root: str | Path = ".") -> Path:
    return ledger_dir(run, root) / HEAD_NAME


def rel(path: str | Path, root: str | Path = ".") -> str:
    """``path`` relative to the workflow root, in POSIX form (as the ledger stores it)."""
    return Path(os.path.relpath(path, root)).as_posix()


def parse_gen_path(path: str) -> tuple[str, int, str] | None:
    """``data/runs/<run>/gen_NNNN/<name>`` -> (run, generation, name); else None."""
    m = _GEN_PATH.match(path)
    return (m["run"], int(m["gen"]), m["name"]) if m else None


def ledger_runs(root: str | Path = ".") -> list[str]:
    """Every run with at least one record in the ledger, sorted."""
    base = Path(root) / LEDGER_DIR
    if not base.is_dir():
        return []
    return sorted(d.name for d in base.iterdir() if d.is_dir() and any(_records_in(d).values()))


def _records_in(directory: Path) -> dict[int, Path]:
    out = {}
    for p in directory.glob("gen_*.json"):
        m = _RECORD_NAME.match(p.name)
        if m:
            out[int(m[1])] = p
    return dict(sorted(out.items()))


def ledger_records(run: str, root: str | Path = ".") -> dict[int, Path]:
    """generation -> record path, for every record file of a run (gaps included)."""
    d = ledger_dir(run, root)
    return _records_in(d) if d.is_dir() else {}


# ---------------------------------------------------------------------- hashing


def canonical_json(obj: Any) -> bytes:
    """The bytes the ledger hashes: sorted keys, no whitespace, ASCII, no NaN."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def sha256(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def content_view(record: dict[str, Any]) -> dict[str, Any]:
    """The deterministic part of a record: what ``content_hash`` covers."""
    return {k: record.get(k) for k in CONTENT_FIELDS}


def compute_content_hash(record: dict[str, Any]) -> str:
    return sha256(content_view(record))


def compute_record_hash(record: dict[str, Any]) -> str:
    return sha256({k: v for k, v in record.items() if k != "record_hash"})


# ---------------------------------------------------------------------- reading

_record_cache: dict[tuple[str, int, int], dict[str, Any]] = {}


def read_record(path: str | Path, cached: bool = True) -> dict[str, Any]:
    """Parse one ledger record (JSON only), naming the file on any problem.

    ``cached`` reuses a record parsed earlier in this process while the file's
    size and mtime are unchanged; ``verify`` always reads afresh.
    """
    path = Path(path)
    if not path.exists():
        raise LedgerError(f"missing ledger record: {path}")
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if cached and key in _record_cache:
        return _record_cache[key]
    record = _read_object(path, "ledger record", REQUIRED_FIELDS)
    _record_cache[key] = record
    return record


def _read_object(path: Path | str, what: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """A JSON object with every one of ``fields``, or a LedgerError naming ``what`` and
    the file."""
    try:
        obj = io.read_json(path)
    except io.ArtifactError as exc:
        raise LedgerError(f"{what} {path} does not parse: {exc}") from exc
    if not isinstance(obj, dict):
        raise LedgerError(f"{what} {path} does not parse: expected a JSON object")
    missing = [k for k in fields if k not in obj]
    if missing:
        raise LedgerError(f"{what} {path} is incomplete: missing {', '.join(missing)}")
    return obj


def load_record(run: str, generation: int, root: str | Path = ".") -> dict[str, Any]:
    return read_record(record_path(run, generation, root))


# ----------------------------------------------------------- environment facts


# The checkout whose code runs: the repository holding this package's source files.
_CODE_DIR = Path(__file__).resolve().parents[1]


@functools.cache
def _code_version(code_dir: str) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=code_dir,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--verify", "HEAD")
        top = git("rev-parse", "--show-toplevel")
    except (OSError, subprocess.SubprocessError):  # no git, not a repo, or no commit yet
        return {"commit": UNKNOWN, "dirty": None}
    try:
        # DVC adds its outputs to .gitignore files: bookkeeping, not code.
        excludes = [f":(exclude){p}" for p in OUTPUT_PATHS] + [":(exclude,glob)**/.gitignore"]
        status = git(
            "-C", top, "status", "--porcelain", "--untracked-files=normal", "--", ".", *excludes
        )
        dirty: bool | None = bool(status)
    except (OSError, subprocess.SubprocessError):
        dirty = None
    return {"commit": commit, "dirty": dirty}


def code_version(code_dir: str | Path | None = None) -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the git checkout holding the code that runs.

    That is the checkout of this package's source files (``code_dir``, by default
    the package itself), not necessarily the workflow root: with one environment
    shared by two clones, the code that runs is the installed one. ``dirty``
    ignores what the workflow writes (:data:`OUTPUT_PATHS` and the ``.gitignore``
    entries DVC adds for its outputs). Outside a git repository (or before its
    first commit) the commit is ``"unknown"`` and dirty is null. Computed once per
    process.
    """
    return dict(_code_version(str(Path(code_dir or _CODE_DIR).resolve())))


code_version.cache_clear = _code_version.cache_clear  # type: ignore[attr-defined]


@functools.cache
def _package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def package_versions() -> dict[str, str | None]:
    """Versions of Python and the packages the artifacts depend on (null if absent)."""
    return dict(_package_versions())


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
    prev_hash = None
    if generation > 0:
        prev = parent_records.get((run, generation - 1))
        if prev is None:
            prev_path = record_path(run, generation - 1, root)
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


def head_digest(content_hashes: list[str]) -> str:
    """sha256 of the ordered content hashes of generations 0..G-1."""
    return sha256(list(content_hashes))


def build_head(run: str, generations: int, root: str | Path = ".") -> dict[str, Any]:
    """The head of a run's ledger: its length and a digest of every record's content
    hash, in order (not written)."""
    hashes = [load_record(run, g, root)["content_hash"] for g in range(generations)]
    return {
        "schema": SCHEMA,
        "run": run,
        "generations": generations,
        "head_generation": generations - 1 if hashes else None,
        "head_content_hash": hashes[-1] if hashes else None,
        "digest": head_digest(hashes),
    }


def write_head(run: str, generations: int, root: str | Path = ".") -> dict[str, Any]:
    """Write ``lineage/<run>/head.json`` for generations 0..G-1; return it.

    The head anchors the ledger in review: rewriting any record consistently (hashes
    and chain recomputed) changes the digest, so head.json changes in the diff, and
    its md5 in dvc.lock. Content hashes, not record hashes: a byte-identical rebuild
    at another commit leaves the head unchanged. The write is atomic.
    """
    head = build_head(run, generations, root)
    io.write_json(head_path(run, root), head)
    return head


def read_head(path: str | Path) -> dict[str, Any]:
    """Parse a head.json (JSON only), naming the file on any problem."""
    head = _read_object(path, "ledger head", HEAD_FIELDS)
    count = head["generations"]
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise LedgerError(f"ledger head {path}: generations is not a count")
    return head
