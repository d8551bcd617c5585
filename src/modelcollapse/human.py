"""Human data: a source's pool and test split (the ``human`` step), and what a family
knows of its source (the truth, or a tokenizer and sizes for real data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from threadpoolctl import threadpool_limits

from modelcollapse import io, tables
from modelcollapse.families import get_family
from modelcollapse.families.base import Family
from modelcollapse.manifest import PROVENANCE_COLUMNS
from modelcollapse.paths import human_dir, human_file
from modelcollapse.stamps import STAMP_NAME, write_stamp


def prepare_human(
    source: str,
    spec: dict[str, Any],
    root: str | Path = ".",
    stamp: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Write a human source's pool and test split into data/human/<source>/.

    A statistical family draws them from its known true distribution (saved as
    truth.safetensors); a family on real data (one that defines
    ``load_human(spec, out_dir, rng) -> (pool, test, origin_path)``) reads its
    corpus and writes what it needs beside them (a tokenizer, a description).
    Every row's ``origin_md5`` is the md5 of the truth or of that description.

    The directory is replaced as a whole (``io.atomic_dir``), its stamp
    (``stamp``: the step's key and material) written with it. Returns the md5 of
    every file it holds.
    """
    family = get_family(spec["family"])
    rng = np.random.default_rng(np.random.SeedSequence(spec["seed"]))
    with io.atomic_dir(human_dir(source, root)) as out_dir, threadpool_limits(1):
        if family.load_human is not None:
            pool, test, origin = family.load_human(spec, out_dir, rng)
        else:
            assert family.truth_from_spec is not None  # Family checks it has one of the two
            truth = family.truth_from_spec(spec["truth"])
            origin = out_dir / "truth.safetensors"
            truth.save(origin, extra={"source": source, "spec": spec})
            pool = truth.sample(spec["pool_size"], rng)
            test = truth.sample(spec["test_size"], rng)
        origin_md5 = io.file_md5(origin)
        for name, frame in (("pool.parquet", pool), ("test.parquet", test)):
            frame = tables.with_columns(
                frame, source="human", origin_generation=np.int64(-1), origin_md5=origin_md5
            )
            io.write_table(out_dir / name, frame)
        md5s = {p.name: io.file_md5(p) for p in sorted(out_dir.iterdir()) if p.is_file()}
        if stamp is not None:
            write_stamp(out_dir / STAMP_NAME, **stamp, files=md5s)
    return md5s


def load_truth(fam: Family, source: str, root: str | Path = ".") -> Any:
    """What a family knows of its human source: the true distribution, or (for real
    data) whatever its ``load_truth(human_dir)`` returns (a tokenizer, sizes)."""
    if fam.load_truth is not None:
        return fam.load_truth(human_dir(source, root))
    return fam.load_model(human_file(source, "truth.safetensors", root))


def data_columns(table: pa.Table) -> list[str]:
    """A table's columns less the provenance columns the pipeline adds."""
    return [c for c in table.column_names if c not in PROVENANCE_COLUMNS and c != "model_md5"]
