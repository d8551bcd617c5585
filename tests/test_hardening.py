"""Bad input never runs code, never wastes work (issue 9).

Every bad params.yaml below goes through the three entry points a user has: the
Snakefile (real Snakemake), every `dvc repro` stage (real DVC, whose commands must
never hand an id to a shell) and `python -m modelcollapse validate`. Each must refuse
before any job starts, naming the key and the value; no injected command may run,
and nothing already computed may change.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from workflow_utils import dvc, dvc_repo, snakemake, tree_md5s

from modelcollapse.config import ConfigError, read_yaml, validate

pytestmark = pytest.mark.slow

BASE = """\
defaults: {samples_per_generation: 30, seed: 7, chains: 1}
human:
  g1:
    family: gaussian
    truth: {dim: 1, mean: 0.0, std: 1.0}
    pool_size: 1000
    test_size: 200
    seed: 1
  cat:
    family: categorical
    truth: {num_symbols: 8}
    pool_size: 1000
    test_size: 200
    seed: 3
runs:
  r:
    family: gaussian
    human: g1
    generations: 2
    regime: mix
    real_fraction: 0.5
  c: {family: categorical, human: cat, generations: 2}
report: {}
"""

RUN_R = "  r:\n    family: gaussian"
LONG_ID = "a" * 300

# (case, (old, new) edits of BASE, fragments the message must hold)
# fmt: off
CASES = [
    ("id_semicolon", [(RUN_R, '  "a;touch marker":\n    family: gaussian')],
     ["runs: id 'a;touch marker'"]),
    ("id_dollar_paren", [(RUN_R, '  "a$(touch marker)":\n    family: gaussian')],
     ["runs: id 'a$(touch marker)'"]),
    ("id_backticks", [(RUN_R, '  "a`touch marker`":\n    family: gaussian')],
     ["runs: id 'a`touch marker`'"]),
    ("id_newline", [(RUN_R, '  "a\\n":\n    family: gaussian')], ["runs: id 'a\\n'"]),
    ("id_300_chars", [(RUN_R, f"  {LONG_ID}:\n    family: gaussian")],
     ["runs: id 'aaaa", "(300 characters)"]),
    ("source_id_semicolon",
     [("  g1:\n", '  "g;touch marker":\n'), ("human: g1\n", 'human: "g;touch marker"\n')],
     ["human: id 'g;touch marker'"]),
    ("cov_inf", [("truth: {dim: 1, mean: 0.0, std: 1.0}", "truth: {dim: 1, cov: [[.inf]]}")],
     ["human.g1.truth.cov.0.0: inf is not a finite number"]),
    ("real_fraction_nan", [("real_fraction: 0.5", "real_fraction: .nan")],
     ["runs.r.real_fraction: nan is not a finite number"]),
    ("sample_scale_inf", [("regime: mix\n", "regime: mix\n    options: {sample_scale: .inf}\n")],
     ["runs.r.options.sample_scale: inf is not a finite number"]),
    ("generations_float", [("generations: 2\n    regime", "generations: 3.0\n    regime")],
     ["runs.r.generations: 3.0 is not of type 'integer'", "write 3, not 3.0"]),
    ("seed_float", [("seed: 7,", "seed: 5.0,")],
     ["defaults.seed: 5.0 is not of type 'integer'"]),
    ("pool_size_float", [("pool_size: 1000\n    test_size: 200\n    seed: 1",
                          "pool_size: 1500.0\n    test_size: 200\n    seed: 1")],
     ["human.g1.pool_size: 1500.0 is not of type 'integer'"]),
    ("pool_size_1e12", [("pool_size: 1000\n    test_size: 200\n    seed: 1",
                         "pool_size: 1000000000000\n    test_size: 200\n    seed: 1")],
     ["human.g1: a job would need about 29.1 TiB", "over the budget of 8192 MB per job"]),
    ("test_size_1e12", [("test_size: 200\n    seed: 3", "test_size: 1000000000000\n    seed: 3")],
     ["human.cat: a job would need about", "test_size 1000000000000"]),
    ("chains_1e12", [("generations: 2}", "generations: 2, chains: 1000000000000}")],
     ["runs.c: a job would need about", "chains 1000000000000", "budget of 8192 MB"]),
    ("num_symbols_1e12", [("num_symbols: 8", "num_symbols: 1000000000000")],
     ["human.cat: a job would need about", "a model of 1000000000000 numbers"]),
    ("num_symbols_float_1e12", [("num_symbols: 8", "num_symbols: 1.0e+12")],
     ["human.cat.truth.num_symbols: 1000000000000.0 is not of type 'integer'"]),
    ("duplicate_key_flow", [("seed: 7,", "seed: 7, seed: 8,")], ["duplicate key 'seed'"]),
    ("duplicate_key", [("    generations: 2\n    regime: mix",
                        "    generations: 2\n    seed: 1\n    seed: 2\n    regime: mix")],
     ["duplicate key 'seed'"]),
]
# fmt: on
IDS = [c[0] for c in CASES]


def bad_params(edits: list[tuple[str, str]]) -> str:
    text = BASE
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    return text


def snapshot(root: Path) -> dict[str, str]:
    """Everything a run computes or records: what must not change."""
    files = tree_md5s(root, "data", "results", "lineage", "reports")
    files["dvc.lock"] = tree_md5s(root, ".")["dvc.lock"] if (root / "dvc.lock").exists() else ""
    return files


def no_marker(root: Path) -> bool:
    return not any(p.name.startswith("marker") for p in root.rglob("*marker*"))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A study built by `dvc repro` (so every stage command ran once, from DVC_STAGE)."""
    root = tmp_path_factory.mktemp("hardening") / "study"
    dvc_repo(root, yaml.safe_load(BASE))
    (root / "params.yaml").write_text(BASE)
    dvc(root, "repro")
    assert (root / "lineage" / "r" / "gen_0001.json").exists()
    return root


@pytest.fixture
def study(built):
    before = snapshot(built)
    yield built, before
    (built / "params.yaml").write_text(BASE)


def test_the_base_settings_are_valid():
    assert sorted(validate(yaml.safe_load(BASE)).runs) == ["c", "r"]


@pytest.mark.parametrize(("case", "edits", "expected"), CASES, ids=IDS)
def test_validate_refuses_naming_key_and_value(case, edits, expected, tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(bad_params(edits))
    with pytest.raises(ConfigError) as info:
        validate(read_yaml(path), source=str(path))
    message = str(info.value)
    for fragment in expected:
        assert fragment in message, message


@pytest.mark.parametrize(("case", "edits", "expected"), CASES, ids=IDS)
def test_snakemake_and_dvc_refuse_before_any_job(case, edits, expected, study):
    root, before = study
    (root / "params.yaml").write_text(bad_params(edits))
    smk = snakemake(root, "--cores", "1", check=False)
    out = smk.stdout + smk.stderr
    assert smk.returncode != 0
    if not case.startswith("duplicate_key"):  # the message names the file and line instead
        for fragment in expected:
            assert fragment in out, out[-3000:]
    else:
        assert re.search(r"params\.yaml: line \d+: duplicate key 'seed'", out), out[-3000:]
    assert no_marker(root)
    assert snapshot(root) == before

    rep = dvc(root, "repro", check=False)
    out = rep.stdout + rep.stderr
    assert rep.returncode != 0
    assert no_marker(root), out
    if case.startswith("duplicate_key"):
        assert "seed" in out and "duplicate" in out.lower(), out[-3000:]  # DVC's own refusal
    else:
        # The first stage to run (`keys`, which every other stage depends on) refuses.
        assert "Running stage 'keys'" in out, out[-3000:]
        assert len(re.findall(r"Running stage", out)) == 1, out[-3000:]
        for fragment in expected:
            assert fragment in out, out[-3000:]
    assert snapshot(root) == before


def test_a_single_stage_checks_its_id_before_anything(study):
    """`dvc repro --single-item` skips the keys stage. Even when the stage's
    dependencies exist (planted here), so that DVC runs its command, the id never
    reaches a shell (dvc.yaml's commands hold none) and the command refuses it."""
    root, before = study
    for stage in yaml.safe_load((root / "dvc.yaml").read_text())["stages"].values():
        assert "${" not in stage.get("do", stage)["cmd"]
    (root / "params.yaml").write_text(bad_params(CASES[0][1]))
    planted = root / "data" / "keys" / "chain" / "a;touch marker"
    planted.write_text("planted\n")
    try:
        rep = dvc(root, "repro", "--single-item", "chain@a;touch marker", check=False)
    finally:
        planted.unlink()
    out = rep.stdout + rep.stderr
    assert rep.returncode != 0
    assert "> python scripts/stage.py chain\n" in out, out[-3000:]
    assert "runs: id 'a;touch marker'" in out, out[-3000:]
    assert no_marker(root)
    assert snapshot(root) == before


def test_the_memory_budget_can_be_raised_on_purpose():
    raw = yaml.safe_load(bad_params(CASES[IDS.index("chains_1e12")][1]))
    raw["runs"]["c"]["chains"] = 5_000_000
    with pytest.raises(ConfigError, match=r"runs\.c: a job would need about 10\.\d GiB"):
        validate(raw)
    raw["limits"] = {"job_memory_mb": 16_000}
    params = validate(raw)
    assert params.runs["c"].chains == 5_000_000
    assert params.limits == {"job_memory_mb": 16_000}


def test_raising_the_budget_reruns_nothing(study):
    root, before = study
    (root / "params.yaml").write_text(BASE + "limits: {job_memory_mb: 16000}\n")
    out = snakemake(root, "--cores", "1").stderr
    assert "Nothing to be done" in out, out[-2000:]
    rep = dvc(root, "status")
    assert "up to date" in rep.stdout, rep.stdout
    assert snapshot(root) == before
