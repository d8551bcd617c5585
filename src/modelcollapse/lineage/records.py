"""The ledger's record format: where records live, how they are hashed and read.

A run's ledger is the directory ``lineage/<run>/``: one JSON record per generation,
``gen_NNNN.json``, and ``head.json``, the anchor the metrics step writes. This module
holds everything that fixes what those files are, and that a reader needs: the
schema and field lists, the paths, the canonical JSON and the two hashes, and the
parsers for records and heads. Building and writing records is
``modelcollapse.lineage.ledger``'s job; the circumstances of a build (commit,
package versions) are ``modelcollapse.lineage.environment``'s.

* ``content_hash``: sha256 of the canonical JSON of the deterministic fields
  (:data:`CONTENT_FIELDS`), among them ``prev_content_hash``, the content hash of the
  generation before it, and each parent's content hash. Re-running a deterministic
  generation reproduces it, whatever the commit, machine or time, so the chain survives
  rebuilds; editing or dropping a record breaks it from there on.
* ``record_hash``: sha256 of the canonical JSON of the whole record except itself:
  the circumstances (commit, packages) cannot be edited unnoticed either.
* ``head.json``'s ``digest``: sha256 of the ordered content hashes of a run's records
  (:func:`head_digest`).

Records are JSON only: reading them never executes anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from modelcollapse import io
from modelcollapse.paths import gen_tag

SCHEMA = "modelcollapse.lineage/3"
LEDGER_DIR = "lineage"

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
    "root",
    "prev_content_hash",
)
REQUIRED_FIELDS = (*CONTENT_FIELDS, "code", "packages", "content_hash")

# lineage/<run>/head.json: the run's length and a digest of its records (write_head).
HEAD_NAME = "head.json"
HEAD_FIELDS = (
    "schema",
    "run",
    "root",
    "generations",
    "head_generation",
    "head_content_hash",
    "digest",
)

_RECORD_NAME = re.compile(r"^gen_(\d+)\.json$")
_GEN_PATH = re.compile(
    r"^data/(runs/(?P<run>[^/]+)|(?P<root>roots/[^/]+/[^/]+))/gen_(?P<gen>\d+)/(?P<name>[^/]+)$"
)
# A root's ledger: lineage/roots/<source>/<root id>/gen_0000.json (modelcollapse.settings).
ROOTS_DIR = "roots"


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
    """``data/runs/<run>/gen_NNNN/<name>`` -> (run, generation, name), and
    ``data/roots/<source>/<id>/gen_0000/<name>`` -> (``roots/<source>/<id>``, 0, name);
    else None."""
    m = _GEN_PATH.match(path)
    if not m:
        return None
    return (m["run"] or m["root"], int(m["gen"]), m["name"])


def ledger_runs(root: str | Path = ".") -> list[str]:
    """Every run with at least one record in the ledger, sorted (roots: ledger_roots)."""
    base = Path(root) / LEDGER_DIR
    if not base.is_dir():
        return []
    return sorted(
        d.name
        for d in base.iterdir()
        if d.is_dir() and d.name != ROOTS_DIR and any(_records_in(d).values())
    )


def ledger_roots(root: str | Path = ".") -> list[str]:
    """Every root (a generation 0 that runs share) with a record, as
    ``roots/<source>/<id>``, sorted."""
    base = Path(root) / LEDGER_DIR / ROOTS_DIR
    if not base.is_dir():
        return []
    return sorted(
        f"{ROOTS_DIR}/{source.name}/{d.name}"
        for source in base.iterdir()
        if source.is_dir()
        for d in source.iterdir()
        if d.is_dir() and any(_records_in(d).values())
    )


def roots_in_use(root: str | Path = ".", besides: Iterable[str] = ()) -> set[str]:
    """Every root a run in the ledger names (in its head or its first record), the runs
    ``besides`` left out: a run taken out of params.yaml keeps its records, and they
    keep its root (the runs of params.yaml start from the roots it says)."""
    out = set()
    skip = set(besides)
    for run in ledger_runs(root):
        if run in skip:
            continue
        named = []
        head = head_path(run, root)
        own = ledger_records(run, root)
        try:
            if head.exists():
                named.append(read_head(head).get("root"))
            if own:
                named.append(read_record(own[min(own)]).get("root"))
        except LedgerError:
            continue  # a record that does not parse is verify's to report
        out |= {r for r in named if isinstance(r, str) and r.startswith(ROOTS_DIR + "/")}
    return out


def chain_records(run: str, root: str | Path = ".") -> dict[int, Path]:
    """generation -> record path over a run's whole chain: its root's generation 0 (the
    root its records name) and its own generations 1.. (gaps included)."""
    own = ledger_records(run, root)
    if not own or 0 in own:
        return own
    try:
        first = read_record(own[min(own)])
    except LedgerError:
        return own
    where = first.get("root")
    if isinstance(where, str) and where.startswith(ROOTS_DIR + "/"):
        path = record_path(where, 0, root)
        if path.exists():
            return {0: path, **own}
    return own


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
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except FileNotFoundError:
        raise LedgerError(f"missing ledger record: {path}") from None
    key = (os.path.abspath(name), st.st_size, st.st_mtime_ns)
    if cached and key in _record_cache:
        return _record_cache[key]
    record = _read_object(name, "ledger record", REQUIRED_FIELDS)
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
    """Generation ``generation`` of ``run``'s record; generation 0 of a run is its
    root's (``chain_records``)."""
    path = record_path(run, generation, root)
    if generation == 0 and not path.exists():
        path = chain_records(run, root).get(0, path)
    return read_record(path)


# ------------------------------------------------------------------------ head


def head_digest(content_hashes: list[str]) -> str:
    """sha256 of the ordered content hashes of generations 0..G-1."""
    return sha256(list(content_hashes))


def read_head(path: str | Path) -> dict[str, Any]:
    """Parse a head.json (JSON only), naming the file on any problem."""
    head = _read_object(path, "ledger head", HEAD_FIELDS)
    count = head["generations"]
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise LedgerError(f"ledger head {path}: generations is not a count")
    return head
