"""The lineage ledger: records, human share, head, verify, show, export, diff, summary, DVC.

A tiny study is built with the pipeline's own functions in a temporary directory;
the DVC test runs the real DVC (repro, push, fresh clone, pull) on a local remote.
The forgery tests play someone who can write lineage/ (and more): each rewrite
recomputes the hashes and re-chains the later records, so only the derived fields,
the head or dvc.lock can give it away.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from prov.model import (
    ProvActivity,
    ProvDerivation,
    ProvDocument,
    ProvEntity,
    ProvGeneration,
    ProvUsage,
)
from workflow_utils import ROOT, TINY_PARAMS, dvc, make_workflow, run

from modelcollapse import human, pipeline
from modelcollapse.__main__ import main
from modelcollapse.config import validate
from modelcollapse.io import dumps_json, file_md5
from modelcollapse.keys import Keys
from modelcollapse.lineage import (
    LedgerError,
    code_version,
    compute_content_hash,
    compute_record_hash,
    diff,
    diff_text,
    export,
    ledger_records,
    lineage_summary_text,
    load_record,
    record_generation,
    record_path,
    show,
    verify,
)
from modelcollapse.lineage.graph import build_graph, records_of, to_prov
from modelcollapse.lineage.ledger import head_path, write_head
from modelcollapse.paths import GEN_FILES, HUMAN_FILES, gen_dir, gen_file, human_file
from modelcollapse.results import collect_metrics
from modelcollapse.settings import RunSettings

N = 30
RAW = {
    "defaults": {"samples_per_generation": N, "seed": 7, "chains": 1},
    "human": {"g1": TINY_PARAMS["human"]["g1"]},
    "runs": {
        "mix": {"family": "gaussian", "human": "g1", "generations": 7, "regime": "mix",
                "real_fraction": 0.1},
        "acc": {"family": "gaussian", "human": "g1", "generations": 4, "regime": "accumulate"},
        "accsub": {"family": "gaussian", "human": "g1", "generations": 5,
                   "regime": "accumulate_subsample"},
        "rep": {"family": "gaussian", "human": "g1", "generations": 4},
    },
    "report": {"compare": {}},
}  # fmt: skip
PARAMS = validate(RAW)
RUN_DICTS = {run: settings.to_dict() for run, settings in PARAMS.runs.items()}
# Every run's generations from 1 on, and the one root (generation 0) they all share.
SHARED_ROOT = PARAMS.run("mix").root
assert list(PARAMS.roots()) == [SHARED_ROOT]
TOTAL_GENS = sum(s.generations - 1 for s in PARAMS.runs.values()) + 1


KEYS = Keys(PARAMS)


def generate(
    run_id: str, g: int, settings: RunSettings, root: Path, key: str | None = None
) -> dict:
    """One generation step, which writes its ledger record; return the record (of the
    run's root for generation 0)."""
    chain = settings.chain(run_id, g)
    record_path(chain, g, root).unlink(missing_ok=True)
    pipeline.run_generation(run_id, g, settings, root, key=key)
    return load_record(chain, g, root)


def build_study(root: Path, params=PARAMS) -> Path:
    """Every generation of every run, then each run's metrics step (which writes its
    ledger head), as the workflow runs them."""
    root.mkdir(parents=True, exist_ok=True)
    for source, spec in params.human.items():
        human.prepare_human(source, spec, root)
    for run_id, spec in params.runs.items():
        for g in range(spec.generations):
            if g == 0 and record_path(spec.root, 0, root).exists():
                continue  # a root the runs before this one share
            generate(run_id, g, spec, root, Keys(params).generation(run_id, g))
        collect_metrics(run_id, spec, root)
    return root


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return build_study(tmp_path_factory.mktemp("lineage") / "study")


@pytest.fixture
def work(study, tmp_path) -> Path:
    """A private copy of the study that a test may tamper with."""
    return Path(shutil.copytree(study, tmp_path / "work"))


def cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["lineage", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def flip_byte(path: Path) -> bytes:
    data = path.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(flipped))
    return data


def rewrite(path: Path, record: dict) -> None:
    path.write_text(dumps_json(record), encoding="utf-8")


def fail_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("FAIL ")]


# --------------------------------------------------------------------- records


def test_record_holds_artifacts_parents_composition_and_versions(study):
    rec = load_record("mix", 2, study)
    for name in GEN_FILES:
        path = gen_file("mix", 2, name, study)
        entry = rec["artifacts"][name]
        assert entry["path"] == f"data/runs/mix/gen_0002/{name}"
        assert entry["md5"] == file_md5(path)
        assert entry["size"] == path.stat().st_size
    for name in HUMAN_FILES:
        assert rec["human_data"]["files"][name]["md5"] == file_md5(human_file("g1", name, study))
    prev = load_record("mix", 1, study)
    assert rec["prev_content_hash"] == prev["content_hash"]
    assert [(p["run"], p["generation"], p["content_hash"]) for p in rec["parents"]] == [
        ("mix", 1, prev["content_hash"])
    ]
    assert rec["key"] == KEYS.generation("mix", 2)
    assert rec["parents"][0]["used"] == [
        {"path": "data/runs/mix/gen_0001/samples.parquet", "md5": prev_md5(prev, "samples")}
    ]
    assert rec["composition"]["rows"] == N
    assert rec["composition"]["human_rows"] == {"data/human/g1/pool.parquet": 3}
    assert rec["composition"]["synthetic_rows"] == {"1": 27}
    assert rec["settings"] == PARAMS.generation_settings("mix")
    assert rec["seed"] == 7
    # The code that ran is this package: its checkout's commit, not the study's root.
    assert rec["code"] == code_version()
    assert rec["packages"]["numpy"] == np.__version__
    assert rec["packages"]["modelcollapse"] == "0.1.0"
    assert rec["content_hash"] == compute_content_hash(rec)
    assert rec["record_hash"] == compute_record_hash(rec)
    assert load_record("mix", 0, study)["prev_content_hash"] is None
    # Readable in a diff: two-space indent, sorted keys.
    assert record_path("mix", 2, study).read_text() == dumps_json(rec)


def prev_md5(rec: dict, stem: str) -> str:
    return rec["artifacts"][f"{stem}.parquet"]["md5"]


def test_accumulate_subsample_parents_are_every_generation_it_drew_from(study):
    for g in range(1, 5):
        rec = load_record("accsub", g, study)
        manifest = json.loads(gen_file("accsub", g, "train.json", study).read_text())
        drawn = sorted(p["origin_generation"] for p in manifest["parts"] if p["source"] != "human")
        assert sorted(p["generation"] for p in rec["parents"]) == drawn
        assert len(drawn) >= 1
        for p in rec["parents"]:
            parent = load_record("accsub", p["generation"], study)
            assert p["content_hash"] == parent["content_hash"]


def test_human_share_matches_a_hand_computation_for_mix(study):
    # mix, real_fraction 0.1, N = 30: 3 human rows, 27 rows from generation g - 1.
    # A synthetic row stands for itself and one row of what its generator learned
    # from: mean path m_g = 0.1 * 1 + 0.9 * (1 + m_{g-1}) = 1 + 0.9 m_{g-1}, m_0 = 1;
    # effective share 1/m_g = 1 / (10 - 9 * 0.9**g).
    m = 1.0
    expected = []
    for g in range(7):
        if g:
            m = 0.1 * 1 + 0.9 * (1 + m)
        expected.append(1 / m)
    shares = [load_record("mix", g, study)["human_share"] for g in range(7)]
    assert [s["effective"] for s in shares] == pytest.approx(expected, rel=1e-12)
    assert [s["effective"] for s in shares] == pytest.approx(
        [1 / (10 - 9 * 0.9**g) for g in range(7)], rel=1e-12
    )
    assert shares[5]["effective"] == pytest.approx(0.213420, abs=1e-6)
    assert [s["direct"] for s in shares] == pytest.approx([1.0] + [0.1] * 6)


def test_human_share_for_replace_and_accumulate(study):
    # replace: every row is one step further from the human data: 1 / (g + 1).
    for g in range(4):
        assert load_record("rep", g, study)["human_share"]["effective"] == pytest.approx(
            1 / (g + 1), rel=1e-12
        )
    # accumulate: N human rows plus N rows from every generation j < g.
    m: list[float] = []
    for g in range(4):
        m.append((N + sum(N * (1 + m[j]) for j in range(g))) / (N * (g + 1)))
        share = load_record("acc", g, study)["human_share"]
        assert share["effective"] == pytest.approx(1 / m[g], rel=1e-12)
        assert share["direct"] == pytest.approx(1 / (g + 1))


def test_rerunning_a_generation_reproduces_its_content_hash(work, tmp_path):
    before = load_record("mix", 3, work)
    shutil.rmtree(gen_dir("mix", 3, work))
    head = head_path("mix", work).read_bytes()
    after = generate("mix", 3, PARAMS.run("mix"), work, KEYS.generation("mix", 3))
    assert after["content_hash"] == before["content_hash"]
    assert after["artifacts"] == before["artifacts"]
    write_head(
        "mix", 7, SHARED_ROOT, work
    )  # the metrics step after the rebuild: the head holds too
    assert head_path("mix", work).read_bytes() == head
    # A study built elsewhere from scratch has the same content hashes throughout.
    other = build_study(
        tmp_path / "elsewhere", validate({**RAW, "runs": {"mix": RAW["runs"]["mix"]}})
    )
    for g in range(7):
        assert (
            load_record("mix", g, other)["content_hash"]
            == load_record("mix", g, work)["content_hash"]
        )


def test_a_generation_cannot_be_recorded_before_its_parent(work):
    record_path("rep", 1, work).unlink()
    with pytest.raises(LedgerError, match=r"gen_0001\.json.*record generations in order"):
        record_generation("rep", 2, PARAMS.run("rep"), work)


# ---------------------------------------------------------------------- verify


def test_verify_passes_and_says_what_it_checked(study, capsys):
    rc, out, err = cli(capsys, "verify", "--root", str(study))
    assert rc == 0, err
    assert "lineage verified" in out
    assert f"ledger records: {TOTAL_GENS} parsed" in out
    assert f"artifacts: {TOTAL_GENS * len(GEN_FILES)} md5s recomputed" in out
    assert "human data: 4 files' md5s recomputed" in out
    assert "runs: 4 (acc, accsub, mix, rep)" in out
    assert (
        f"derived fields: {TOTAL_GENS} compositions, parents and human shares re-derived "
        f"from train.json, {TOTAL_GENS} settings and keys compared with model.json" in out
    )
    assert "heads: 4 head.json digests recomputed" in out
    assert "note: no params.yaml: settings checked against model.json only" in out


@pytest.mark.parametrize(
    ("run_id", "g", "name"),
    [
        ("mix", 5, "samples.parquet"),
        ("mix", 0, "model.safetensors"),
        ("acc", 3, "model.safetensors"),
        ("accsub", 2, "samples.parquet"),
    ],
)
def test_one_flipped_byte_fails_verify_naming_run_generation_and_file(
    work, capsys, run_id, g, name
):
    chain = PARAMS.run(run_id).chain(run_id, g)  # generation 0: the root's
    path = gen_file(chain, g, name, work)
    original = flip_byte(path)
    rc, _, err = cli(capsys, "verify", "--root", str(work))
    assert rc == 1
    fails = fail_lines(err)
    assert len(fails) == 1, err
    where = gen_file(chain, g, name).as_posix()
    assert fails[0].startswith(f"FAIL run {chain} generation {g}: {where}: md5 mismatch")
    path.write_bytes(original)
    rc, out, err = cli(capsys, "verify", "--root", str(work))
    assert rc == 0, err


def test_a_missing_artifact_or_human_file_is_named(work, capsys):
    gen_file("rep", 1, "model.json", work).unlink()
    original = flip_byte(human_file("g1", "pool.parquet", work))
    rc, _, err = cli(capsys, "verify", "--root", str(work))
    assert rc == 1
    assert "FAIL run rep generation 1: data/runs/rep/gen_0001/model.json: missing file" in err
    assert "data/human/g1/pool.parquet: md5 mismatch" in err
    human_file("g1", "pool.parquet", work).write_bytes(original)


def test_editing_an_old_record_breaks_the_chain_at_that_record(work, capsys):
    path = record_path("mix", 2, work)
    rec = json.loads(path.read_text())
    rec["settings"]["seed"] = 8
    rewrite(path, rec)
    rc, _, err = cli(capsys, "verify", "--root", str(work))
    assert rc == 1
    fails = fail_lines(err)
    assert fails[0] == (
        "FAIL run mix generation 2: lineage/mix/gen_0002.json: hash chain broken at this "
        "record: its content_hash does not match its content (edited after it was written)"
    )
    assert all("run mix generation 2:" in f for f in fails), fails


def test_a_forged_record_with_recomputed_hashes_breaks_the_next_link(work, capsys):
    path = record_path("mix", 2, work)
    rec = json.loads(path.read_text())
    rec["composition"]["human_rows"]["data/human/g1/pool.parquet"] = 30
    rec["content_hash"] = compute_content_hash(rec)
    rec["record_hash"] = compute_record_hash(rec)
    rewrite(path, rec)
    rc, _, err = cli(capsys, "verify", "--root", str(work))
    assert rc == 1
    assert (
        "FAIL run mix generation 3: lineage/mix/gen_0003.json: hash chain broken between "
        "generation 2 and 3" in err
    )
    assert "run mix generation 2: lineage/mix/gen_0002.json: human share does not follow" in err


def test_deleting_a_record_breaks_the_chain_there(work, capsys):
    record_path("mix", 3, work).unlink()
    rc, _, err = cli(capsys, "verify", "--root", str(work))
    assert rc == 1
    assert fail_lines(err)[0] == (
        "FAIL run mix generation 3: lineage/mix/gen_0003.json: ledger record missing: "
        "hash chain broken at this generation"
    )
    # Dropping the newest record leaves a generation the head counts and artifacts no
    # record accounts for.
    record_path("rep", 3, work).unlink()
    rc, _, err = cli(capsys, "verify", "rep", "--root", str(work))
    assert rc == 1
    assert fail_lines(err) == [
        "FAIL run rep generation 3: lineage/rep/gen_0003.json: ledger record missing: "
        "hash chain broken at this generation",
        "FAIL run rep generation 3: data/runs/rep/gen_0003: artifacts without a ledger "
        "record (record deleted?)",
    ]


def test_an_unparsable_record_is_named(work, capsys):
    record_path("acc", 1, work).write_text("{not json")
    rc, _, err = cli(capsys, "verify", "acc", "--root", str(work))
    assert rc == 1
    assert "FAIL run acc generation 1: lineage/acc/gen_0001.json: ledger record" in err
    assert "does not parse" in err
    rc, _, err = cli(capsys, "show", "acc:1", "--root", str(work))
    assert rc == 2
    assert "gen_0001.json does not parse" in err


# ------------------------------------------------------------------------ head


def content_digest(hashes: list[str]) -> str:
    """The head's digest, computed here from its definition: sha256 of the canonical
    JSON list of the content hashes of generations 0..G-1."""
    return hashlib.sha256(json.dumps(hashes, separators=(",", ":")).encode()).hexdigest()


def test_the_metrics_step_writes_a_head_that_digests_every_record(study):
    hashes = [load_record("mix", g, study)["content_hash"] for g in range(7)]
    head = json.loads(head_path("mix", study).read_text())
    assert head == {
        "schema": "modelcollapse.lineage/3",
        "run": "mix",
        "root": SHARED_ROOT,  # generation 0: its record is the root's
        "generations": 7,
        "head_generation": 6,
        "head_content_hash": hashes[6],
        "digest": content_digest(hashes),
    }
    assert head_path("mix", study).read_text() == dumps_json(head)
    assert head_path("mix", study).as_posix().endswith("lineage/mix/head.json")
    assert not (study / "lineage/mix/head.json.tmp").exists()


def test_a_missing_head_is_named_and_generations_beyond_it_are_a_note(work, capsys):
    head_path("rep", work).unlink()
    rc, _, err = cli(capsys, "verify", "rep", "--root", str(work))
    assert rc == 1
    assert fail_lines(err) == [
        "FAIL run rep: lineage/rep/head.json: missing: the run's metrics step writes it "
        "(Snakemake rule collect_metrics, DVC stage chain@rep); run it and commit head.json"
    ]
    # A generation beyond the head's count (as when `generations` was lowered).
    write_head("rep", 4, SHARED_ROOT, work)
    generate("rep", 4, PARAMS.run("rep"), work, None)
    result = verify(["rep"], work)
    assert result.ok, [str(p) for p in result.problems]
    note = "run rep: generation(s) 4-4 recorded beyond head.json's 4 (generations lowered?)"
    assert f"{note}: not anchored" in result.notes
    collect_metrics("rep", dataclasses.replace(PARAMS.run("rep"), generations=5), work)
    assert json.loads(head_path("rep", work).read_text())["generations"] == 5
    assert verify(["rep"], work).ok


def forge(root: Path, run_id: str, g: int, edit) -> dict:
    """Rewrite record ``g`` of ``run_id`` with ``edit`` as someone with write access
    to lineage/ can: recompute its hashes, re-chain every later record (its
    prev_content_hash and parents' content hashes, then its hashes). Return the
    forged record."""
    renamed: dict[str, str] = {}
    forged: dict = {}
    for gen, path in ledger_records(run_id, root).items():
        if gen < g:
            continue
        rec = json.loads(path.read_text())
        if gen == g:
            edit(rec)
            forged = rec
        rec["prev_content_hash"] = renamed.get(rec["prev_content_hash"], rec["prev_content_hash"])
        for p in rec["parents"]:
            p["content_hash"] = renamed.get(p["content_hash"], p["content_hash"])
        old = rec["content_hash"]
        rec["content_hash"] = compute_content_hash(rec)
        rec["record_hash"] = compute_record_hash(rec)
        renamed[old] = rec["content_hash"]
        rewrite(path, rec)
    return forged


def head_line(root: Path, run_id: str, generations: int) -> str:
    """The FAIL line of a head whose records were rewritten."""
    stored = json.loads(head_path(run_id, root).read_text())["digest"]
    hashes = [load_record(run_id, g, root)["content_hash"] for g in range(generations)]
    return (
        f"FAIL run {run_id}: lineage/{run_id}/head.json: digest {stored} is not "
        f"{content_digest(hashes)}, the digest of the content hashes of records "
        f"0-{generations - 1}: records were rewritten after head.json was written (lineage "
        "diff shows which) or it was edited; after a rebuild, run the metrics step"
    )


@pytest.mark.parametrize("g", [3, 6], ids=["middle", "last"])
def test_a_forged_effective_share_rehashed_and_rechained_is_caught(work, capsys, g):
    true = load_record("mix", g, work)["human_share"]
    forge(work, "mix", g, lambda rec: rec["human_share"].update(effective=0.5))
    rc, _, err = cli(capsys, "verify", "mix", "--root", str(work))
    assert rc == 1
    record = f"FAIL run mix generation {g}: lineage/mix/gen_{g:04d}.json:"
    assert fail_lines(err) == [
        head_line(work, "mix", 7),
        f"{record} human share: effective 0.5 is not 1 / path_length {true['path_length']}",
        f"{record} human share differs from the one data/runs/mix/gen_{g:04d}/train.json and "
        f"the parents' records give (effective: record 0.5, derived {true['effective']})",
    ]
    # The direct share alone, too.
    forge(work, "mix", g, lambda rec: rec["human_share"].update(true, direct=0.2))
    rc, _, err = cli(capsys, "verify", "mix", "--root", str(work))
    assert fail_lines(err)[1:] == [
        f"{record} human share: direct 0.2 is not the composition's human fraction 0.1",
        f"{record} human share differs from the one data/runs/mix/gen_{g:04d}/train.json and "
        "the parents' records give (direct: record 0.2, derived 0.1)",
    ]


def test_a_forged_composition_with_a_consistent_share_is_caught_against_train_json(work, capsys):
    true = load_record("mix", 6, work)

    def edit(rec):  # 6 human rows instead of 3, and every share made to follow
        m5 = load_record("mix", 5, work)["human_share"]["path_length"]
        m = (6 + 24 * (1 + m5)) / 30
        rec["composition"].update(
            human_rows={"data/human/g1/pool.parquet": 6}, synthetic_rows={"5": 24},
            human_fraction=0.2,
        )  # fmt: skip
        rec["human_share"] = {"direct": 0.2, "effective": 1 / m, "path_length": m}

    forged = forge(work, "mix", 6, edit)
    rc, _, err = cli(capsys, "verify", "mix", "--root", str(work))
    assert rc == 1
    share, true_share = forged["human_share"], true["human_share"]
    assert fail_lines(err) == [
        head_line(work, "mix", 7),
        "FAIL run mix generation 6: lineage/mix/gen_0006.json: composition differs from "
        "data/runs/mix/gen_0006/train.json's parts (human_fraction: record 0.2, train.json "
        '0.1; human_rows: record {"data/human/g1/pool.parquet": 6}, train.json '
        '{"data/human/g1/pool.parquet": 3}; synthetic_rows: record {"5": 24}, train.json '
        '{"5": 27})',
        "FAIL run mix generation 6: lineage/mix/gen_0006.json: human share differs from the "
        "one data/runs/mix/gen_0006/train.json and the parents' records give (direct: record "
        f"0.2, derived 0.1; effective: record {share['effective']}, derived "
        f"{true_share['effective']}; path_length: record {share['path_length']}, derived "
        f"{true_share['path_length']})",
    ]


def test_forged_settings_are_caught_against_model_json_and_params_yaml(work, capsys):
    (work / "params.yaml").write_text(yaml.safe_dump(RAW))
    rc, out, err = cli(capsys, "verify", "--root", str(work))
    assert rc == 0, err
    assert "params.yaml: settings of 5 run(s) and root(s) compared" in out

    def edit(rec):
        rec["settings"]["seed"] = rec["seed"] = 8

    forge(work, "mix", 2, edit)
    rc, _, err = cli(capsys, "verify", "--root", str(work))
    assert rc == 1
    assert fail_lines(err) == [
        head_line(work, "mix", 7),
        "FAIL run mix generation 2: lineage/mix/gen_0002.json: settings differ from "
        "data/runs/mix/gen_0002/model.json's (seed: record 8, model.json 7)",
        "FAIL run mix generation 2: lineage/mix/gen_0002.json: settings differ from "
        "params.yaml's (seed: record 8, params.yaml 7): the run is out of date with "
        "params.yaml (rebuild it) or the record was edited",
    ]
    # The seed alone, against the record's own settings.
    forge(work, "mix", 2, lambda rec: rec["settings"].update(seed=7))
    assert fail_lines(cli(capsys, "verify", "mix", "--root", str(work))[2])[1:] == [
        "FAIL run mix generation 2: lineage/mix/gen_0002.json: seed 8 is not the settings' seed 7"
    ]


def test_params_yaml_out_of_date_invalid_or_without_the_run(work):
    raw = json.loads(json.dumps(RAW))
    raw["runs"]["rep"]["samples_per_generation"] = 40
    raw["runs"]["acc"]["generations"] = 5
    del raw["runs"]["accsub"]
    (work / "params.yaml").write_text(yaml.safe_dump(raw))
    result = verify(root=work, files=False)
    assert [str(p) for p in result.problems] == [
        "run acc: lineage/acc/head.json: anchors 4 generations, params.yaml asks for 5: the "
        "run is out of date with params.yaml (run the workflow) or head.json was edited",
    ] + [
        f"run rep generation {g}: lineage/rep/gen_{g:04d}.json: settings differ from "
        "params.yaml's (samples_per_generation: record 30, params.yaml 40): the run is out "
        "of date with params.yaml (rebuild it) or the record was edited"
        for g in range(1, 4)  # generation 0 is the root mix and acc still start from
    ]
    assert "run accsub is not in params.yaml: its settings are not compared" in result.notes
    (work / "params.yaml").write_text("runs: [\n")
    result = verify(root=work, files=False)
    assert len(result.problems) == 1
    assert str(result.problems[0]).startswith(
        "run *: params.yaml: invalid, no settings checked against it: "
    )
    assert "not valid YAML" in str(result.problems[0])


def test_a_consistent_rewrite_of_the_records_is_caught_by_the_head(work, capsys):
    # code_fingerprint is derived from nothing verify can read: only the head sees it.
    forge(work, "mix", 3, lambda rec: rec.update(code_fingerprint="f" * 64))
    rc, _, err = cli(capsys, "verify", "--root", str(work))
    assert rc == 1
    assert fail_lines(err) == [head_line(work, "mix", 7)]


def test_a_rewritten_head_is_caught_against_dvc_lock(work, capsys):
    head = head_path("mix", work)
    committed = file_md5(head)
    lock = {
        "schema": "2.0",
        "stages": {
            "chain@mix": {
                "cmd": "python scripts/stage.py chain",
                "outs": [{"path": "lineage/mix/head.json", "hash": "md5", "md5": committed,
                          "size": head.stat().st_size}],
            }
        },
    }  # fmt: skip
    (work / "dvc.lock").write_text(yaml.safe_dump(lock))
    result = verify(root=work)
    assert result.ok, [str(p) for p in result.problems]
    assert result.counts["dvc_heads"] == 1
    note = "dvc.lock has no output lineage/rep/head.json (stage chain@rep): head not checked"
    assert note in result.notes
    forge(work, "mix", 3, lambda rec: rec.update(code_fingerprint="f" * 64))
    write_head("mix", 7, SHARED_ROOT, work)  # the forger rewrites the head too
    rc, _, err = cli(capsys, "verify", "--root", str(work))
    assert rc == 1
    assert fail_lines(err) == [
        f"FAIL run mix: lineage/mix/head.json: md5 {file_md5(head)}, dvc.lock records "
        f"{committed}: head.json changed after dvc.lock was written (the workflow records a "
        "rebuilt head in both)"
    ]


def test_verify_rederives_compositions_as_the_manifest_module_does(study):
    from modelcollapse.lineage.audit import _Manifests
    from modelcollapse.manifest import composition, read_manifest

    manifests = _Manifests(study)
    for run_id, spec in PARAMS.runs.items():
        for g in reversed(range(spec.generations)):  # the deepest include first
            path = gen_file(spec.chain(run_id, g), g, "train.json").as_posix()
            expected = composition(read_manifest(study / path), study)
            assert manifests.composition(path) == expected
            assert load_record(run_id, g, study)["composition"] == expected


# ------------------------------------------------------------------------ show


def test_show_a_deep_generation_lists_every_generation_and_the_human_md5(study, capsys):
    rc, out, _ = cli(capsys, "show", "mix:6", "--root", str(study))
    assert rc == 0
    headers = [line.split("  [")[0] for line in out.splitlines() if line.startswith("generation ")]
    assert headers == [f"generation {g}" for g in range(6, 0, -1)] + [
        f"generation 0: root {SHARED_ROOT} (shared by the runs whose generation 0 it is)"
    ]
    assert file_md5(human_file("g1", "pool.parquet", study)) in out
    for g in range(7):
        rec = load_record("mix", g, study)
        assert rec["record_hash"] in out
        assert rec["artifacts"]["model.safetensors"]["md5"] in out
    assert "30 rows: 3 human (data/human/g1/pool.parquet), 27 from generation 5" in out
    assert "direct 0.100000 (of its training rows), effective 0.191680" in out  # 1/(10-9*0.9**6)
    assert '"real_fraction": 0.1' in out
    by_path = show("data/runs/mix/gen_0006/model.safetensors", study)
    assert by_path == out == show("mix", study)


def test_show_follows_every_parent_of_accumulate_subsample(study):
    text = show("accsub:4", study)
    for g in range(1, 5):
        assert f"generation {g}  [lineage/accsub/gen_{g:04d}.json]" in text
    assert f"generation 0: root {SHARED_ROOT} " in text
    assert f"[lineage/{SHARED_ROOT}/gen_0000.json]" in text


# ---------------------------------------------------------------------- export


def test_prov_json_round_trips_and_keeps_every_entity_and_relation(study, capsys):
    rc, text, _ = cli(capsys, "export", "--format", "prov-json", "--root", str(study))
    assert rc == 0
    doc = ProvDocument.deserialize(content=text, format="json")
    assert doc == to_prov(build_graph(records_of(None, study)))
    records = [load_record(r, g, study) for r, s in PARAMS.runs.items()
               for g in range(1, s.generations)]  # fmt: skip
    records.append(load_record(SHARED_ROOT, 0, study))  # once: the runs share it
    derivations = sum(
        2  # checkpoint from training set, samples from checkpoint
        + sum(1 for n in rec["composition"]["human_rows"].values() if n)
        + sum(len(p["used"]) for p in rec["parents"])
        for rec in records
    )
    counts = {
        kind: len(list(doc.get_records(kind)))
        for kind in (ProvEntity, ProvActivity, ProvUsage, ProvGeneration, ProvDerivation)
    }
    assert counts == {
        ProvEntity: len(HUMAN_FILES) + 3 * TOTAL_GENS,
        ProvActivity: 2 * TOTAL_GENS,
        ProvUsage: 2 * TOTAL_GENS,
        ProvGeneration: 2 * TOTAL_GENS,
        ProvDerivation: derivations,
    }
    entities = {str(e.identifier): e for e in doc.get_records(ProvEntity)}
    for rec in records:
        model = rec["artifacts"]["model.safetensors"]
        attrs = {str(k): v for k, v in entities[f"mc:{model['path']}"].attributes}
        assert attrs["mc:md5"] == model["md5"]
    used = {(str(u.args[0]), str(u.args[1])) for u in doc.get_records(ProvUsage)}
    assert ("mc:run/mix/gen_0003/train", "mc:data/runs/mix/gen_0003/train.json") in used


def test_mermaid_and_dot_name_every_artifact(study, tmp_path, capsys):
    graph = build_graph(records_of(["accsub"], study))
    out = tmp_path / "g.mmd"
    rc, _, _ = cli(
        capsys, "export", "accsub", "-f", "mermaid", "-o", str(out), "--root", str(study)
    )
    assert rc == 0
    mermaid = out.read_text()
    assert mermaid.startswith("flowchart LR\n")
    assert sum(1 for line in mermaid.splitlines() if "-->" in line) == len(graph.edges)
    dot = export("dot", ["accsub"], study)
    assert dot.startswith("digraph lineage {") and dot.rstrip().endswith("}")
    assert sum(1 for line in dot.splitlines() if " -> " in line) == len(graph.edges)
    for g in range(5):
        md5 = load_record("accsub", g, study)["artifacts"]["model.safetensors"]["md5"][:8]
        assert md5 in mermaid and md5 in dot
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg"], input=dot, text=True, check=True, capture_output=True)


def test_export_limited_to_runs_and_a_window_of_generations(study, capsys):
    """A diagram that fits a pull request: --run and --generations START:STOP."""
    full = build_graph(records_of(["accsub"], study))
    rc, mermaid, _ = cli(
        capsys, "export", "--run", "accsub", "--generations", "1:3", "-f", "mermaid",
        "--root", str(study),
    )  # fmt: skip
    assert rc == 0
    window = build_graph(records_of(["accsub"], study, range(1, 3)))
    checkpoints = [p for p, n in window.nodes.items() if n["kind"] == "Checkpoint"]
    assert sorted(checkpoints) == [f"data/runs/accsub/gen_000{g}/model.safetensors" for g in (1, 2)]
    for g in range(5):
        md5 = load_record("accsub", g, study)["artifacts"]["model.safetensors"]["md5"][:8]
        assert (md5 in mermaid) == (g in (1, 2)), g
    assert len(mermaid.splitlines()) < len(export("mermaid", ["accsub"], study).splitlines())
    assert len(window.edges) < len(full.edges)
    # dot keeps the edges from what the window read outside it (generation 0's samples)
    dot = export("dot", ["accsub"], study, range(1, 3))
    assert f'"data/{SHARED_ROOT}/gen_0000/samples.parquet" -> ' in dot
    # one generation; bad windows and unknown runs are refused with their names
    assert cli(capsys, "export", "accsub", "--generations", "4", "--root", str(study))[0] == 0
    rc, _, err = cli(capsys, "export", "--generations", "3:1", "--root", str(study))
    assert rc == 2 and "3:1" in err and "no generation" in err
    rc, _, err = cli(capsys, "export", "--generations", "a:b", "--root", str(study))
    assert rc == 2 and "START:STOP" in err
    rc, _, err = cli(capsys, "export", "--run", "nope", "--root", str(study))
    assert rc == 2 and "'nope' has no ledger records" in err


# ------------------------------------------------------------- diff and summary


def git(cwd: Path, *args: str) -> str:
    return run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd).stdout


def test_diff_against_a_git_revision(work, capsys):
    git(work, "init", "-q", "-b", "main")
    (work / "params.yaml").write_text(yaml.safe_dump(RAW))
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "study")
    code_version.cache_clear()
    assert code_version(work) == {"commit": git(work, "rev-parse", "HEAD").strip(), "dirty": False}
    # Changed settings for the last generation of rep, one new generation of mix,
    # acc's last generation removed.
    changed = dataclasses.replace(PARAMS.run("rep"), seed=8)
    generate("rep", 3, changed, work)
    generate("mix", 7, PARAMS.run("mix"), work, KEYS.generation("mix", 7))
    record_path("acc", 3, work).unlink()
    rc, out, _ = cli(capsys, "diff", "HEAD", "--root", str(work))
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "lineage diff HEAD -> working tree"
    assert "run acc: changed" in lines and "  removed generations 3" in lines
    assert "run accsub: unchanged (5 generations)" in lines
    assert "run mix: changed" in lines and "  added generations 7" in lines
    rep = next(line for line in lines if line.startswith("  generation 3: settings (seed)"))
    assert "data (" in rep and "samples.parquet" in rep
    assert "code (" not in rep, "the same code ran: its fingerprint is unchanged"
    assert [d.status for d in diff("HEAD", ["accsub", "rep"], work)] == ["unchanged", "changed"]
    rc, _, _ = cli(capsys, "diff", "HEAD", "--exit-code", "--root", str(work))
    assert rc == 1
    # The working tree is dirty only when the code changes, not when outputs do.
    code_version.cache_clear()
    assert code_version(work)["dirty"] is False
    (work / "params.yaml").write_text("changed: true\n")
    code_version.cache_clear()
    assert code_version(work)["dirty"] is True
    code_version.cache_clear()
    assert "run rep: changed" in diff_text("HEAD", diff("HEAD", ["rep"], work))


def test_summary_is_compact_deterministic_and_full_on_request(work, capsys):
    changed = dataclasses.replace(PARAMS.run("rep"), seed=8)
    generate("rep", 3, changed, work)
    text = lineage_summary_text(RUN_DICTS, work)
    assert lineage_summary_text(RUN_DICTS, work) == text
    for run_id in PARAMS.runs:
        assert f"## {run_id}" in text
    mix = {g: load_record("mix", g, work) for g in range(7)}
    effective = [mix[g]["human_share"]["effective"] for g in range(7)]
    assert effective[6] == pytest.approx(1 / (10 - 9 * 0.9**6))
    # generations with the same direct share and settings share a row
    assert f"| 1–6 | 0.100 | {effective[1]:.3f} → {effective[6]:.3f} |" in text
    assert f"`{mix[0]['human_data']['files']['pool.parquet']['md5'][:10]}`" in text
    assert f"model.safetensors `{mix[6]['artifacts']['model.safetensors']['md5'][:10]}`" in text
    # rep: replace, and generation 3 rebuilt with another seed: its own row, named
    assert "| 0 | 1.000 | 1.000 |\n| 1–2 | 0.000 | 0.500 → 0.333 |\n| 3 | 0.000 | 0.250 |" in text
    assert "Settings changed within the ledger: generation 3: seed: 7 -> 8." in text

    full = lineage_summary_text(RUN_DICTS, work, full=True)
    row = next(line for line in full.splitlines() if line.startswith("| 6 | 0.1000 | 0.1917 |"))
    assert mix[6]["artifacts"]["model.safetensors"]["md5"][:10] in row
    assert row.endswith("| none |")
    assert len(full.splitlines()) > len(text.splitlines())

    rc, out, _ = cli(capsys, "summary", "mix", "--full", "--root", str(work))
    assert rc == 0 and "## mix" in out and "## rep" not in out and row in out
    rc, _, err = cli(capsys, "summary", "nope", "--root", str(work))
    assert rc == 2 and "nope" in err


# ------------------------------------------------------------------- processes


def test_the_command_line_runs_as_a_process(study):
    out = subprocess.run(
        [sys.executable, "-m", "modelcollapse", "lineage", "verify", "--root", str(study)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "lineage verified" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "modelcollapse", "lineage", "show", "nope", "--root", str(study)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "run 'nope' has no ledger records" in bad.stderr


# ------------------------------------------------------------------------- DVC

DVC_PARAMS = {
    "defaults": {"samples_per_generation": N, "seed": 7, "chains": 1},
    "human": {"g1": TINY_PARAMS["human"]["g1"]},
    "runs": {
        "mix": {"family": "gaussian", "human": "g1", "generations": 4, "regime": "mix",
                "real_fraction": 0.1},
        "accsub": {"family": "gaussian", "human": "g1", "generations": 3,
                   "regime": "accumulate_subsample"},
    },
    "report": {"compare": {"both": ["mix", "accsub"]}},
}  # fmt: skip


def dvc_listing(repo: Path, md5: str) -> dict[str, str]:
    value = md5.removesuffix(".dir")
    path = repo / ".dvc" / "cache" / "files" / "md5" / value[:2] / (value[2:] + ".dir")
    return {e["relpath"]: e["md5"] for e in json.loads(path.read_text())}


@pytest.mark.slow
def test_after_a_fresh_clone_and_dvc_pull_the_ledger_verifies_against_dvc(tmp_path):
    repo = make_workflow(tmp_path / "origin", DVC_PARAMS)
    for name in (".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    git(repo, "init", "-q", "-b", "main")
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    dvc(repo, "remote", "add", "-d", "local", str(tmp_path / "remote"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "code")
    code_commit = git(repo, "rev-parse", "HEAD").strip()
    dvc(repo, "repro")
    params = validate(DVC_PARAMS)
    gens = {r: s.generations for r, s in params.runs.items()}
    (shared,) = params.roots()  # both runs start from one generation 0
    for r, count in gens.items():
        assert [record_path(r, g, repo).exists() for g in range(count)] == [False] + [True] * (
            count - 1
        )
    assert record_path(shared, 0, repo).exists()
    dvc(repo, "push")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "study")
    tracked = git(repo, "ls-files", "lineage").split()
    assert sorted(tracked) == sorted(
        [f"lineage/{r}/gen_{g:04d}.json" for r, count in gens.items() for g in range(1, count)]
        + [f"lineage/{r}/head.json" for r in gens]
        + [f"lineage/{shared}/gen_0000.json"]
    )
    assert load_record("mix", 3, repo)["code"] == {"commit": code_commit, "dirty": False}

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not list(clone.glob("data/runs/*/gen_*")), "artifacts are never committed to git"
    assert not verify(root=clone).ok  # nothing pulled yet: every artifact is missing
    dvc(clone, "pull")
    result = verify(root=clone)
    assert result.ok, [str(p) for p in result.problems]
    assert result.counts["dvc_runs"] == 3  # two runs and their root
    assert result.counts["dvc_files"] == (sum(gens.values()) - 1) * len(GEN_FILES)
    assert result.counts["dvc_heads"] == 2 and result.counts["params_runs"] == 3
    out = run([sys.executable, "-m", "modelcollapse", "lineage", "verify"], clone)
    assert "dvc.lock: 3 run and root directories checked file by file" in out.stdout

    # The ledger's md5s are the md5s DVC itself records for the same files.
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    for r in gens:
        (head_out,) = [o for o in lock["stages"][f"chain@{r}"]["outs"]
                       if o["path"] == f"lineage/{r}/head.json"]  # fmt: skip
        assert head_out["md5"] == file_md5(head_path(r, clone))
    for r, count in gens.items():
        (out_entry,) = [o for o in lock["stages"][f"chain@{r}"]["outs"]
                        if o["path"] == f"data/runs/{r}"]  # fmt: skip
        listing = dvc_listing(clone, out_entry["md5"])
        ledger = {
            a["path"].removeprefix(f"data/runs/{r}/"): a["md5"]
            for g in range(1, count)
            for a in load_record(r, g, clone)["artifacts"].values()
        }
        assert ledger == listing
    (roots_out,) = lock["stages"]["roots@g1"]["outs"]
    assert roots_out["path"] == "data/roots/g1"
    root_id = shared.rsplit("/", 1)[1]
    assert dvc_listing(clone, roots_out["md5"]) == {
        a["path"].removeprefix("data/roots/g1/"): a["md5"]
        for a in load_record(shared, 0, clone)["artifacts"].values()
    }
    assert all(a["path"].startswith(f"data/roots/g1/{root_id}/gen_0000/")
               for a in load_record("mix", 0, clone)["artifacts"].values())  # fmt: skip
    (human_out,) = lock["stages"]["human@g1"]["outs"]
    assert human_out["path"] == "data/human/g1"
    listing = dvc_listing(clone, human_out["md5"])
    for f in load_record("mix", 0, clone)["human_data"]["files"].values():
        assert listing[f["path"].removeprefix("data/human/g1/")] == f["md5"]

    # Without the .dir listings in the cache, verify recomputes DVC's .dir hash.
    for r in gens:
        (o,) = [o for o in lock["stages"][f"chain@{r}"]["outs"] if o["path"] == f"data/runs/{r}"]
        value = o["md5"].removesuffix(".dir")
        (clone / ".dvc/cache/files/md5" / value[:2] / (value[2:] + ".dir")).unlink()
    result = verify(root=clone, files=False)
    assert result.ok and result.counts["dvc_recomputed"] == 2
    # ... and a ledger that disagrees with dvc.lock fails.
    path = record_path("accsub", 2, clone)
    rec = json.loads(path.read_text())
    rec["artifacts"]["metrics.json"]["md5"] = "0" * 32
    rewrite(path, rec)
    problems = [str(p) for p in verify(["accsub"], root=clone, files=False).problems]
    assert any(p.startswith("run accsub: data/runs/accsub: dvc.lock records") for p in problems)
