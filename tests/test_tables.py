"""Arrow tables without pandas: conversions, Parquet bytes, and a job's imports."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from workflow_utils import TINY_PARAMS, make_workflow

from modelcollapse import io, tables
from modelcollapse.config import validate
from modelcollapse.human import prepare_human
from modelcollapse.jobs import write_study


def test_columns_round_trip_through_arrow_buffers():
    x = np.random.default_rng(0).normal(size=(50, 3))
    table = tables.from_matrix(x, ["x0", "x1", "x2"])
    assert table.schema.types == [pa.float64()] * 3
    np.testing.assert_array_equal(tables.matrix(table, ["x0", "x1", "x2"]), x)
    assert tables.matrix(table, ["x0", "x1"]).flags.f_contiguous  # as pandas laid it out
    symbols = np.arange(7, dtype=np.int64)
    table = tables.with_columns(
        tables.from_columns({"symbol": symbols}), source="human", origin_generation=np.int64(-1)
    )
    assert table.schema.types == [pa.int64(), pa.large_string(), pa.int64()]
    assert table["source"].to_pylist() == ["human"] * 7
    column = tables.column(table, "symbol")
    column[0] = 99  # a writable copy, not a view of Arrow's memory
    assert table["symbol"][0].as_py() == 0
    # sliced and multi-chunk columns convert with their offsets
    two = tables.concat([table.slice(1, 2), table.slice(5, 2)])
    np.testing.assert_array_equal(tables.column(two, "symbol"), [1, 2, 5, 6])
    assert tables.column(two, "source").tolist() == ["human"] * 4
    with pytest.raises(ValueError, match=r"lack columns \['y'\]"):
        tables.column(table, "y")


def test_list_columns_round_trip():
    ragged = [np.arange(3, dtype=np.int32), np.arange(5, dtype=np.int32), np.empty(0, np.int32)]
    table = tables.from_columns({"tokens": tables.list_array(ragged, np.int32)})
    assert table.schema.field("tokens").type == pa.list_(pa.int32())
    back = tables.rows(tables.concat([table.slice(1), table.slice(0, 1)]), "tokens", np.int32)
    assert [r.tolist() for r in back] == [ragged[1].tolist(), [], ragged[0].tolist()]


def test_parquet_bytes_match_the_pandas_frames_they_replace(tmp_path):
    """Artifacts keep their bytes: a table built here writes the same Parquet file as
    the pandas frame the pipeline built before (text as large_string, lists of floats)."""
    rng = np.random.default_rng(1)
    x, pixels = rng.normal(size=(40, 2)), rng.random((40, 6)).astype(np.float32)
    frame = pd.DataFrame(x, columns=["x0", "x1"]).assign(
        pixels=list(pixels), source="synthetic", origin_generation=np.int64(3), model_md5="ab"
    )
    io.write_table(tmp_path / "pandas.parquet", pa.Table.from_pandas(frame, preserve_index=False))
    table = tables.with_columns(
        tables.from_matrix(x, ["x0", "x1"]),
        pixels=tables.list_array(pixels, np.float32),
        source="synthetic",
        origin_generation=np.int64(3),
        model_md5="ab",
    )
    io.write_table(tmp_path / "arrow.parquet", table)
    assert io.file_md5(tmp_path / "pandas.parquet") == io.file_md5(tmp_path / "arrow.parquet")


HEAVY = ("pandas", "jsonschema", "scipy", "sklearn", "torch", "matplotlib", "snakemake")


def test_a_statistical_generation_job_loads_no_heavy_package(tmp_path):
    """The generation job of a statistical family (scripts/job.py, as the rules call
    it) imports none of the packages that made start-up cost most of a job."""
    wf = make_workflow(tmp_path / "wf", TINY_PARAMS)
    params = validate(TINY_PARAMS)
    root = params.run("g_mix").root  # its generation 0's job, then generation 1's
    prepare_human("g1", params.human["g1"], wf)
    study = write_study(params, wf)
    assert study.parent == wf / ".modelcollapse" / "study"
    # params.yaml's order of runs is kept (the report lists runs in that order)
    assert list(json.loads(study.read_text())["runs"]) == list(TINY_PARAMS["runs"])
    probe = (
        "import runpy, sys, json\n"
        "sys.path.insert(0, 'scripts')\n"
        "study = sys.argv[1]\n"
        f"for job in ({['root', *root.split('/')[1:]]!r}, ['generation', 'g_mix', '1']):\n"
        "    sys.argv = ['scripts/job.py', *job, '--study', study, '--log', 'logs/p.log']\n"
        "    try:\n"
        "        runpy.run_path('scripts/job.py', run_name='__main__')\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, exc.code\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(study)], cwd=wf, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    assert (wf / "data" / root / "gen_0000/samples.parquet").is_file()
    assert (wf / "data/runs/g_mix/gen_0001/samples.parquet").is_file()
    assert (wf / "lineage/g_mix/gen_0001.json").is_file()
