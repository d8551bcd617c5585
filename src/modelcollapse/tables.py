"""Data in memory: Arrow tables, the form in which every Parquet artifact is read.

The families' data contract (docs/architecture.md, "The family object"): ``fit``,
``score``, ``evaluate`` and ``annotate_samples`` take :class:`pyarrow.Table` objects,
and ``sample`` returns one. Arrow is what Parquet is read into without a conversion,
and it keeps pandas (about half a second to import) off the generation step's path:
with thousands of ten-millisecond generations, start-up is most of a run's time.
Families turn columns into NumPy arrays with the helpers below and build their
samples with :func:`from_columns` or :func:`from_matrix`.

The conversions go through Arrow buffers: ``pyarrow.array(ndarray)`` and
``Array.to_numpy()`` import pandas (to ask whether their argument is a pandas
object), which would cost every generation job that half second again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

# Text columns are Arrow large_string, the type pandas 2 and later gave them: the
# Parquet files keep the bytes they had when the tables were pandas frames.
TEXT = pa.large_string()


# --- NumPy <-> Arrow, without pandas --------------------------------------------------


def to_numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow column of numbers (or text: an object array of str) as NumPy."""
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    parts = [_chunk_to_numpy(c) for c in chunks]
    if not parts:
        return np.empty(0, dtype=values.type.to_pandas_dtype())
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _chunk_to_numpy(chunk: pa.Array) -> np.ndarray:
    kind = chunk.type
    if chunk.null_count == 0 and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        dtype = np.dtype(kind.to_pandas_dtype())
        buffer = chunk.buffers()[1]
        return np.frombuffer(
            buffer, dtype=dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize
        )
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return np.array(chunk.to_pylist(), dtype=object)
    return chunk.to_numpy(zero_copy_only=False)  # anything else (nulls, booleans)


def from_numpy(values: Any) -> pa.Array:
    """A 1-D NumPy array (numbers or text) as an Arrow array; Arrow arrays pass through."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"a column must be one-dimensional, got shape {values.shape}")
    if values.dtype.kind in "iuf":
        values = np.ascontiguousarray(values)
        kind = pa.from_numpy_dtype(values.dtype)
        return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])
    if values.dtype.kind in "UO" and all(isinstance(v, str) for v in values):
        encoded = [v.encode("utf-8") for v in values]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return pa.Array.from_buffers(
            TEXT, len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
        )
    return pa.array(values)  # anything else (booleans, mixed objects)


# --- reading columns --------------------------------------------------------------------


def require(table: pa.Table, *names: str) -> None:
    """Raise ValueError naming the columns ``table`` lacks."""
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise ValueError(f"data lack columns {missing}, got {table.column_names}")


def column(table: pa.Table, name: str, dtype: Any = None) -> np.ndarray:
    """One scalar column as a (writable) NumPy array; ``dtype`` converts."""
    require(table, name)
    return np.array(to_numpy(table.column(name)), dtype=dtype)


def matrix(table: pa.Table, names: Sequence[str], dtype: Any = np.float64) -> np.ndarray:
    """Scalar columns as an ``(n, len(names))`` array, column-major: each column is
    contiguous, as stored (and as pandas laid out a frame's block, so that reductions
    over rows round exactly as they did before the tables were Arrow)."""
    require(table, *names)
    if not names:
        return np.empty((table.num_rows, 0), dtype=dtype)
    return np.stack([to_numpy(table.column(n)).astype(dtype, copy=False) for n in names]).T


def rows(table: pa.Table, name: str, dtype: Any) -> list[np.ndarray]:
    """A list column (tokens, pixels) as one NumPy array per row."""
    require(table, name)
    out: list[np.ndarray] = []
    for chunk in table.column(name).chunks:
        flat = to_numpy(chunk.flatten()).astype(dtype, copy=False)
        offsets = to_numpy(chunk.offsets)
        offsets = offsets - offsets[0]
        out += [flat[offsets[i] : offsets[i + 1]] for i in range(len(chunk))]
    return out


# --- building tables --------------------------------------------------------------------


def list_array(values: Sequence[np.ndarray] | np.ndarray, dtype: Any) -> pa.ListArray:
    """Rows of numbers (a 2-D array, or 1-D arrays of any lengths) as an Arrow list
    column of ``dtype`` items."""
    parts = [np.asarray(v, dtype=dtype).ravel() for v in values]
    offsets = np.zeros(len(parts) + 1, dtype=np.int32)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    flat = np.concatenate(parts) if parts else np.empty(0, dtype=dtype)
    return pa.ListArray.from_arrays(from_numpy(offsets), from_numpy(flat))


def from_columns(columns: Mapping[str, Any]) -> pa.Table:
    """A table from 1-D NumPy arrays (or Arrow arrays), in the given order."""
    return pa.Table.from_arrays([from_numpy(v) for v in columns.values()], names=list(columns))


def from_matrix(values: np.ndarray, names: Sequence[str]) -> pa.Table:
    """An ``(n, d)`` array as ``d`` columns named ``names``."""
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[1] != len(names):
        raise ValueError(f"expected an (n, {len(names)}) array, got shape {values.shape}")
    return from_columns({name: values[:, i] for i, name in enumerate(names)})


def with_columns(table: pa.Table, **columns: Any) -> pa.Table:
    """``table`` with columns set (replaced in place, or appended in the given order).
    A scalar (a string, a NumPy or Python number) fills every row."""
    for name, values in columns.items():
        array = from_numpy(_broadcast(values, table.num_rows))
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, array)
        else:
            table = table.append_column(name, array)
    return table


def _broadcast(values: Any, n: int) -> Any:
    if isinstance(values, str):  # one string n times: its bytes repeated
        data = values.encode("utf-8")
        offsets = np.arange(n + 1, dtype=np.int64) * len(data)
        return pa.Array.from_buffers(TEXT, n, [None, pa.py_buffer(offsets), pa.py_buffer(data * n)])
    if isinstance(values, pa.Array | pa.ChunkedArray) or np.ndim(values) > 0:
        return values
    scalar = np.asarray(values)
    return np.full(n, scalar, dtype=np.int64 if isinstance(values, int) else scalar.dtype)


def concat(tables: Sequence[pa.Table]) -> pa.Table:
    """Rows of several tables; a column some lack is null there."""
    return pa.concat_tables(tables, promote_options="default")
