"""Training-set manifests: references to rows of earlier artifacts, never copies.

A manifest part is either

* ``{"path", "md5", "source", "origin_generation", "rows": [[start, stop], ...]}``:
  those rows of a Parquet artifact (human pool or a generation's samples), or
* ``{"include": "manifest", "path", "md5"}``: every row of an earlier manifest.

Paths are relative to the workflow root. Every md5 is checked when the rows are
read, so a corrupt or substituted artifact is named instead of silently used.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modelcollapse import tables
from modelcollapse.io import ArtifactError, file_md5, read_json, read_table

PROVENANCE_COLUMNS = ("source", "origin_generation", "origin_md5")

_md5_cache: dict[tuple[str, int, int], str] = {}


def cached_md5(path: str | Path) -> str:
    """md5 of a file, memoised on (path, size, mtime) within one process."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"missing artifact: {path}")
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _md5_cache:
        _md5_cache[key] = file_md5(path)
    return _md5_cache[key]


def _rel(path: str | Path, root: str | Path) -> str:
    path = Path(path)
    return (path if not path.is_absolute() else path.relative_to(root)).as_posix()


def to_ranges(rows: np.ndarray) -> list[list[int]]:
    """Sorted row indices -> half-open [start, stop) ranges of consecutive rows."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [rows.size]])
    return [[int(rows[a]), int(rows[b - 1]) + 1] for a, b in zip(starts, stops, strict=True)]


def row_count(path: str | Path, root: str | Path = ".") -> int:
    full = Path(root) / path
    if not full.exists():
        raise ArtifactError(f"missing artifact: {full}")
    return pq.ParquetFile(full).metadata.num_rows


def part(
    path: str | Path, source: str, origin_generation: int | None, rows: list, root: str | Path = "."
) -> dict[str, Any]:
    return {
        "path": _rel(path, root),
        "md5": cached_md5(Path(root) / path),
        "source": source,
        "origin_generation": origin_generation,
        "rows": [[int(a), int(b)] for a, b in rows],
    }


def include(manifest_path: str | Path, root: str | Path = ".") -> dict[str, Any]:
    return {
        "include": "manifest",
        "path": _rel(manifest_path, root),
        "md5": cached_md5(Path(root) / manifest_path),
    }


def _verified(path: Path, md5: str, context: str) -> None:
    actual = cached_md5(path)
    if actual != md5:
        raise ArtifactError(
            f"{context}: artifact {path} has md5 {actual}, but the manifest records {md5}; "
            "it was modified or corrupted after it was used"
        )


def iter_parts(
    manifest: dict[str, Any], root: str | Path = ".", context: str = "", _depth: int = 0
) -> list[dict[str, Any]]:
    """Flatten a manifest's includes into row parts, verifying every md5 on the way."""
    root = Path(root)
    flat: list[dict[str, Any]] = []
    pending = [manifest]
    while pending:  # iterative: accumulate chains can be thousands deep
        current = pending.pop()
        for p in reversed(current["parts"]):
            if p.get("include") == "manifest":
                path = root / p["path"]
                _verified(path, p["md5"], context)
                pending.append(read_manifest(path))
            else:
                flat.append(p)
    flat.reverse()
    return flat


def read_manifest(path: str | Path) -> dict[str, Any]:
    manifest = read_json(path)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("parts"), list):
        raise ArtifactError(f"corrupt manifest {path}: no 'parts' list")
    return manifest


def load_training_set(manifest: dict[str, Any], root: str | Path = ".") -> pa.Table:
    """Materialise a manifest's rows, each with its provenance columns."""
    root = Path(root)
    context = f"run {manifest.get('run')!r} generation {manifest.get('generation')}"
    frames = []
    for p in iter_parts(manifest, root, context):
        path = root / p["path"]
        _verified(path, p["md5"], context)
        table = read_table(path)
        for a, b in p["rows"]:
            if not 0 <= a <= b <= len(table):
                raise ArtifactError(
                    f"{context}: manifest asks for rows {a}..{b - 1} of {path}, "
                    f"which has {len(table)} rows"
                )
        # Row ranges as zero-copy slices of the table (Table.take would load
        # pyarrow.compute, a tenth of a second, in every generation job).
        picked = [table.slice(a, b - a) for a, b in p["rows"]] or [table.slice(0, 0)]
        rows = tables.concat(picked).drop_columns(
            [c for c in table.column_names if c in PROVENANCE_COLUMNS or c == "model_md5"]
        )
        origin = -1 if p["origin_generation"] is None else p["origin_generation"]
        rows = tables.with_columns(
            rows, source=p["source"], origin_generation=np.int64(origin), origin_md5=p["md5"]
        )
        frames.append(rows)
    return tables.concat(frames)


def composition(manifest: dict[str, Any], root: str | Path = ".") -> dict[str, Any]:
    """Row counts by origin: human rows per artifact, synthetic rows per generation."""
    human: Counter[str] = Counter()
    synthetic: Counter[int] = Counter()
    for p in iter_parts(manifest, root):
        n = sum(b - a for a, b in p["rows"])
        if p["source"] == "human":
            human[p["path"]] += n
        else:
            synthetic[int(p["origin_generation"])] += n
    total = sum(human.values()) + sum(synthetic.values())
    return {
        "rows": total,
        "human_rows": dict(sorted(human.items())),
        "synthetic_rows": {str(k): v for k, v in sorted(synthetic.items())},
        "human_fraction": (sum(human.values()) / total) if total else 0.0,
    }
