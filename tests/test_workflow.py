"""End to end with the real Snakemake on a tiny configuration."""

import json
import shutil
import sys

import pandas as pd
import pytest
from workflow_utils import TINY_PARAMS, make_workflow, run, snakemake, tree_md5s

from modelcollapse.config import validate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    wf = make_workflow(tmp_path_factory.mktemp("wf"))
    snakemake(wf, "--cores", "2")
    return wf


def test_every_run_produces_its_artifacts(built):
    params = validate(TINY_PARAMS)
    for run_id, spec in TINY_PARAMS["runs"].items():
        gens = spec["generations"]
        frame = pd.read_csv(built / "results" / run_id / "metrics.csv")
        assert frame.columns[0] == "generation"
        assert frame["generation"].tolist() == list(range(gens))
        assert not (built / "data" / "runs" / run_id / "gen_0000").exists()
        for g in range(gens):  # generation 0 is the run's root's
            chain = params.run(run_id).chain(run_id, g)
            gdir = built / "data" / chain if g == 0 else built / "data" / "runs" / run_id
            gdir = gdir / f"gen_{g:04d}"
            for name in (
                "train.json",
                "model.safetensors",
                "model.json",
                "samples.parquet",
                "metrics.json",
            ):
                assert (gdir / name).is_file(), gdir / name
        assert list((built / "results" / run_id / "figures").glob("*.png"))
    assert (built / "reports" / "report.md").is_file()


def test_metrics_follow_the_regimes(built):
    acc = pd.read_csv(built / "results" / "g_acc" / "metrics.csv")
    assert acc["train_rows"].tolist() == [30, 60, 90]
    assert acc["train_human_fraction"].tolist() == pytest.approx([1, 1 / 2, 1 / 3])
    mix = pd.read_csv(built / "results" / "g_mix" / "metrics.csv")
    assert mix["train_human_fraction"].tolist() == pytest.approx([1.0, 0.2, 0.2])
    lin = pd.read_csv(built / "results" / "lin" / "metrics.csv")
    assert (lin["excess_risk"] > 0).all()
    ens = pd.read_csv(built / "results" / "g_replace" / "ensemble.csv")
    assert list(ens.columns) == ["generation", "metric", "mean", "median", "std"]
    assert set(ens["generation"]) == {0, 1, 2, 3}
    assert pd.read_csv(built / "results" / "cat" / "ensemble.csv").empty  # chains == 1


def test_second_run_has_nothing_to_do(built):
    out = snakemake(built, "--cores", "2", "-n")
    assert "Nothing to be done" in out.stdout + out.stderr


def test_one_generation_rebuilds_alone_and_byte_identically(built):
    before = tree_md5s(built, "data/runs/g_replace")
    for g in (2, 3):
        shutil.rmtree(built / "data" / "runs" / "g_replace" / f"gen_{g:04d}")
    target = "data/runs/g_replace/gen_0002/model.safetensors"
    out = snakemake(built, "--cores", "1", target)
    log = out.stdout + out.stderr
    assert "generation" in log
    assert not (built / "data/runs/g_replace/gen_0003").exists(), "only ancestors are rebuilt"
    after = tree_md5s(built, "data/runs/g_replace")
    assert {k: v for k, v in before.items() if "gen_0003" not in k} == after
    snakemake(built, "--cores", "1")  # restore the rest for other tests


def test_bad_params_fail_before_any_job_naming_run_and_key(tmp_path):
    params = json.loads(json.dumps(TINY_PARAMS))
    params["runs"]["g_mix"].pop("real_fraction")
    wf = make_workflow(tmp_path / "bad", params)
    out = snakemake(wf, "--cores", "1", check=False)
    assert out.returncode != 0
    assert "runs.g_mix.real_fraction" in out.stdout + out.stderr
    assert not (wf / "data").exists(), "no job may start on invalid params"


def test_a_run_too_big_for_its_real_data_stops_before_training(tmp_path):
    """A real corpus fixes its pool size only when prepared: generation 0 checks the
    whole run before training; later invocations stop before any job."""
    params = {
        "defaults": {"seed": 0},
        "human": {"digits": {"family": "vae", "seed": 0, "data": {"per_class": 10}}},
        "runs": {
            "vae_fresh": {
                "family": "vae",
                "human": "digits",
                "regime": "fresh",
                "real_fraction": 0.5,
                "samples_per_generation": 60,
                "generations": 4,
                "options": {"size": "tiny", "epochs": 1, "threads": 1},
            }
        },
        "report": {},
    }
    wf = make_workflow(tmp_path / "fresh", params)
    expected = "runs.vae_fresh: needs 150 human rows but the prepared pool of human.digits is 80"
    out = snakemake(wf, "--cores", "1", check=False)
    root = validate(params).run("vae_fresh").root  # its generation 0, the first job
    log = (wf / "logs" / f"{root}.log").read_text()
    assert out.returncode != 0 and expected in log, log
    assert (wf / "data/human/digits/pool.parquet").is_file()  # kept: nothing computed is lost
    assert not (wf / "data" / root / "gen_0000/model.safetensors").exists()
    out = snakemake(wf, "--cores", "1", "-n", check=False)
    assert out.returncode != 0 and expected in out.stdout + out.stderr
    out = run([sys.executable, "-m", "modelcollapse", "validate"], wf, check=False)
    assert out.returncode == 2 and expected in out.stderr


def test_corrupt_artifact_error_names_the_file(tmp_path):
    params = {
        **TINY_PARAMS,
        "runs": {"g_replace": {**TINY_PARAMS["runs"]["g_replace"], "chains": 1}},
        "report": {},
    }
    wf = make_workflow(tmp_path / "corrupt", params)
    snakemake(wf, "--cores", "1", "data/runs/g_replace/gen_0001/samples.parquet")
    (wf / "data/runs/g_replace/gen_0001/samples.parquet").write_bytes(b"PAR1 garbage")
    out = snakemake(
        wf, "--cores", "1", "data/runs/g_replace/gen_0002/model.safetensors", check=False
    )
    assert out.returncode != 0
    log = out.stdout + out.stderr + "".join(p.read_text() for p in (wf / "logs").rglob("*.log"))
    assert "corrupt Parquet artifact" in log
    assert "data/runs/g_replace/gen_0001/samples.parquet" in log
    assert not (wf / "data/runs/g_replace/gen_0002/model.safetensors").exists()
