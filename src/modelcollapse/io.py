"""Artifact I/O: atomic writes, DVC-compatible md5s, Parquet tables, checkpoints.

Every writer goes through a temporary file and an ``os.replace``, so an interrupted
job never leaves a half-written artifact. Inside a workflow (a directory holding
``dvc.yaml`` or a ``Snakefile``) temporary files live in its scratch directory
``.modelcollapse/tmp``, never among the outputs: a job killed with SIGKILL leaves
nothing where DVC or ``lineage verify`` would see it. No reader executes code:
checkpoints are safetensors + JSON, tables are Parquet.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

if TYPE_CHECKING:
    import pyarrow as pa

# pyarrow loads when a table is read or written: reading params.yaml and checkpoints
# does not pay for it.


class ArtifactError(RuntimeError):
    """An artifact is missing, corrupt or does not match its recorded hash."""


# A workflow root holds one of these; its scratch directory holds temporary files.
WORKFLOW_MARKERS = ("dvc.yaml", "Snakefile")
SCRATCH_DIR = ".modelcollapse/tmp"


@functools.cache
def _scratch_for(directory: Path) -> Path:
    for d in (directory, *directory.parents):
        if any((d / marker).is_file() for marker in WORKFLOW_MARKERS):
            scratch = d / SCRATCH_DIR
            scratch.mkdir(parents=True, exist_ok=True)
            if scratch.stat().st_dev == directory.stat().st_dev:  # os.replace needs one device
                return scratch
            break
    return directory


def scratch_dir(directory: str | os.PathLike) -> Path:
    """Where temporary files bound for ``directory`` are written (created if needed)."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return _scratch_for(directory)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; rename it to ``path`` on success, remove it on failure."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=scratch_dir(path.parent))
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces the directory ``path``."""
    path = Path(path)
    scratch = scratch_dir(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=scratch))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        old = None
        if path.exists() or path.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=scratch))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def dumps_json(obj: Any) -> str:
    """Canonical JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, dumps_json(obj))


def read_json(path: str | os.PathLike) -> Any:
    try:  # no stat first: the planner reads thousands of these
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ArtifactError(f"missing artifact: {path}") from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"corrupt JSON artifact {path}: {exc}") from exc


def file_md5(path: str | os.PathLike) -> str:
    """MD5 of the file's bytes: the same value DVC 3 records for a file output."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"missing artifact: {path}")
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_table(path: str | os.PathLike, table: pa.Table) -> None:
    """Write an Arrow table (modelcollapse.tables) as Parquet, byte-identically for
    identical content: no schema metadata, no statistics, zstd."""
    import pyarrow.parquet as pq

    table = table.replace_schema_metadata(None)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=False)


def read_table(path: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """A Parquet artifact as an Arrow table (``columns``: only those)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"missing artifact: {path}")
    try:
        # ParquetFile, not read_table: the dataset layer behind read_table imports pandas.
        with pq.ParquetFile(path) as parquet:
            return parquet.read(columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise ArtifactError(f"corrupt Parquet artifact {path}: {exc}") from exc


def checkpoint_json_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def save_checkpoint(
    path: str | os.PathLike, tensors: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> None:
    """Write ``path`` (safetensors) and its ``.json`` sidecar (parameters, settings)."""
    path = Path(path)
    arrays = {k: np.ascontiguousarray(v) for k, v in sorted(tensors.items())}
    with atomic_path(path) as tmp:
        save_file(arrays, str(tmp))
    write_json(checkpoint_json_path(path), dict(meta))


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"missing checkpoint: {path}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"corrupt checkpoint {path}: {exc}") from exc
    meta = read_json(checkpoint_json_path(path))
    if not isinstance(meta, dict):
        raise ArtifactError(f"corrupt checkpoint metadata {checkpoint_json_path(path)}")
    return tensors, meta
