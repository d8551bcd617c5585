"""params.yaml validation: bad input is rejected with the run and the key named."""

import copy
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from modelcollapse.config import ConfigError, load_params, validate
from modelcollapse.settings import RunSettings

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "defaults": {"samples_per_generation": 50, "seed": 0},
    "report": {},
    "human": {
        "g1": {
            "family": "gaussian",
            "truth": {"dim": 1, "mean": 0.0, "std": 1.0},
            "pool_size": 1000,
            "test_size": 100,
        },
    },
    "runs": {
        "r": {"family": "gaussian", "human": "g1", "generations": 5},
    },
}


def with_run(**changes):
    raw = copy.deepcopy(BASE)
    raw["runs"]["r"].update(changes)
    return raw


def test_default_params_file_is_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.runs, "the default params.yaml defines runs"
    for run_id, settings in params.runs.items():
        assert settings.human in params.human, run_id
        assert settings.plot_generations[-1] < settings.generations


def test_merges_defaults_and_fills_option_defaults():
    params = validate(BASE)
    run = params.run("r")
    assert run.samples_per_generation == 50
    assert run.regime == "replace"
    assert run.chains == 1
    assert run.options == {"estimator": "unbiased", "sample_scale": 1.0}
    assert run.real_fraction is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.seed = 3  # type: ignore[misc]
    assert RunSettings.from_dict(run.to_dict()) == run  # what a job is handed
    assert "generations" not in params.generation_settings("r")
    assert "chains" not in params.generation_settings("r")


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"samples_per_generation": -5}, ["runs.r.samples_per_generation", "minimum"]),
        ({"real_fraction": 1.5, "regime": "mix"}, ["runs.r.real_fraction"]),
        ({"regime": "mix"}, ["runs.r.real_fraction", "needs real_fraction"]),
        ({"regime": "fresh"}, ["runs.r.real_fraction", "needs real_fraction"]),
        ({"regime": "recycle"}, ["runs.r.regime", "recycle"]),
        ({"family": "transformer"}, ["runs.r.family", "unknown family 'transformer'"]),
        ({"human": "nowhere"}, ["runs.r.human", "unknown human source 'nowhere'"]),
        ({"speed": 3}, ["runs.r", "speed"]),
        ({"options": {"estimator": "biased"}}, ["runs.r.options.estimator", "biased"]),
        ({"options": {"lambda": 2}}, ["runs.r.options", "lambda"]),
        ({"generations": 0}, ["runs.r.generations"]),
        ({"plot_generations": [0, 7]}, ["runs.r.plot_generations", "[7]"]),
        (
            {"regime": "fresh", "real_fraction": 0.5, "generations": 100},
            ["runs.r", "needs 2525 human rows", "human.g1.pool_size is 1000"],
        ),
    ],
)
def test_rejects_bad_run_settings_naming_run_and_key(changes, fragments):
    with pytest.raises(ConfigError) as info:
        validate(with_run(**changes))
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message


def test_rejects_family_mismatch_between_run_and_human_source():
    raw = with_run()
    raw["human"]["z"] = {"family": "categorical", "truth": {"num_symbols": 5}}
    raw["runs"]["r"]["human"] = "z"
    with pytest.raises(ConfigError, match=r"runs\.r\.human: source 'z' holds 'categorical'"):
        validate(raw)


def test_rejects_bad_truth_and_unknown_top_level_key():
    raw = copy.deepcopy(BASE)
    raw["human"]["g1"]["truth"]["std"] = -1
    with pytest.raises(ConfigError, match=r"human\.g1\.truth\.std"):
        validate(raw)
    raw = copy.deepcopy(BASE)
    raw["runz"] = {}
    with pytest.raises(ConfigError, match="runz"):
        validate(raw)


def test_rejects_unknown_run_in_report_group():
    raw = copy.deepcopy(BASE)
    raw["report"] = {"compare": {"grp": ["r", "ghost"]}}
    with pytest.raises(ConfigError, match=r"report\.compare\.grp: unknown run 'ghost'"):
        validate(raw)


def test_missing_or_malformed_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("runs: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_params(bad)
    partial = tmp_path / "partial.yaml"
    partial.write_text(yaml.safe_dump({"human": BASE["human"]}))
    with pytest.raises(ConfigError, match="'runs' is a required property"):
        load_params(partial)


def test_runs_on_real_data_are_checked_against_their_prepared_pool(tmp_path):
    import numpy as np

    from modelcollapse import io
    from modelcollapse.config import check_prepared_pools
    from modelcollapse.neural import digits

    raw = {
        "defaults": {"samples_per_generation": 40},
        "report": {},
        "human": {"digits": {"family": "vae", "data": {"per_class": 10}}},
        "runs": {
            "fits": {"family": "vae", "human": "digits", "generations": 9},
            "fresh": {
                "family": "vae",
                "human": "digits",
                "generations": 4,
                "regime": "fresh",
                "real_fraction": 0.5,
            },
        },
    }
    params = validate(raw)  # the pool size is unknown until the source is prepared
    check_prepared_pools(params, tmp_path)  # not prepared: nothing to check against
    pool = tmp_path / "data/human/digits/pool.parquet"
    io.write_table(pool, digits.image_frame(np.zeros((80, 4), np.float32)))
    check_prepared_pools(params, tmp_path, runs=["fits"])  # 40 of 80 rows
    with pytest.raises(ConfigError) as info:
        check_prepared_pools(params, tmp_path)
    message = str(info.value)
    for fragment in ("runs.fresh", "needs 100 human rows", "prepared pool of human.digits is 80"):
        assert fragment in message, message


def test_scheduling_priorities_and_cluster_resources_follow_the_settings():
    """Priorities (seconds left on the chain) and a cluster job's time limit and GPUs,
    from modelcollapse.scheduling, which no step imports (outside every fingerprint)."""
    from modelcollapse import scheduling
    from modelcollapse.fingerprint import STEP_ENTRIES, closure

    params = load_params(ROOT / "params.yaml")
    lm, gmm = params.run("lm_replace"), params.run("gmm_replace")
    gauss = params.run("gauss_replace")
    assert scheduling.priority(lm, 0) == 5 * 150 and scheduling.priority(lm, 4) == 150
    assert scheduling.priority(gmm, 0) == 100 * 0.5  # mostly Python start-up
    assert scheduling.priority(gauss, 99) == 0  # 0.5 s rounds to 0: the last generation
    # A human source outranks the first generation of every chain that starts from it.
    assert scheduling.human_priority(params, "shakespeare") == 751
    assert scheduling.human_priority(params, "gauss1d") > scheduling.priority(gauss, 0)
    # The ensemble's cost grows with chains x generations; one chain is a header only.
    paper_gmm = dataclasses.replace(gmm, chains=100, generations=2000)
    assert scheduling.ensemble_priority(paper_gmm) == 700
    assert scheduling.ensemble_priority(lm) == 0

    assert scheduling.generation_runtime(lm) == 10  # 4 x 150 s = 10 min: the floor
    assert scheduling.generation_runtime(dataclasses.replace(lm, family="vae")) == 10
    assert scheduling.ensemble_runtime(paper_gmm) == 47  # 4 x 700 s
    assert scheduling.ensemble_runtime(gauss) == 10
    assert scheduling.gpus(lm) == 0
    cuda = dataclasses.replace(lm, options={**lm.options, "device": "cuda"})
    assert scheduling.gpus(cuda) == 1
    modules = set().union(*(closure(entries) for entries in STEP_ENTRIES.values()))
    assert "modelcollapse.scheduling" not in modules


def test_a_run_names_its_own_human_source_for_dvc():
    raw = copy.deepcopy(BASE)
    raw["defaults"]["human"] = "g1"
    validate(raw)  # every run names it too
    del raw["runs"]["r"]["human"]
    with pytest.raises(ConfigError, match=r"runs\.r: missing required key 'human' .*dvc\.yaml"):
        validate(raw)


def test_a_replicate_is_its_run_with_another_seed():
    raw = copy.deepcopy(BASE)
    raw["runs"]["r_s1"] = {"replicate_of": "r", "seed": 1, "human": "g1"}
    raw["runs"]["r_s2"] = {"replicate_of": "r", "seed": 2, "human": "g1"}
    params = validate(raw)
    assert list(params.runs) == ["r", "r_s1", "r_s2"]
    base = params.run("r")
    assert params.run("r_s2") == dataclasses.replace(base, seed=2)
    assert params.report["replicates"] == {"r": ["r_s1", "r_s2"]}
    assert "replicates" not in validate(BASE).report


def test_validate_lists_each_replicate_with_its_seed(tmp_path, capsys):
    from modelcollapse.__main__ import main

    raw = copy.deepcopy(BASE)
    raw["runs"]["r_s1"] = {"replicate_of": "r", "seed": 1, "human": "g1"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    assert main(["validate", str(tmp_path / "params.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("1 chain(s), seed 0")
    assert lines[1].startswith("r_s1: gaussian on g1, replace, 5 generations x 50 samples")
    assert lines[1].endswith("1 chain(s), seed 1 (a replicate of r)")


@pytest.mark.parametrize(
    ("replicate", "message"),
    [
        ({"replicate_of": "r", "seed": 0, "human": "g1"}, "runs.x.seed: 0 is also the seed of 'r'"),
        ({"replicate_of": "r", "human": "g1"}, "runs.x: missing required key 'seed'"),
        ({"replicate_of": "r", "seed": 1}, "runs.x: missing required key 'human'"),
        ({"replicate_of": "r", "seed": 1, "human": "g1", "generations": 9}, "remove generations"),
        ({"replicate_of": "nope", "seed": 1, "human": "g1"}, "'nope' is not a run"),
        ({"replicate_of": "r_s1", "seed": 5, "human": "g1"}, "'r_s1' is itself a replicate"),
    ],
)
def test_a_bad_replicate_is_refused_with_its_key_named(replicate, message):
    raw = copy.deepcopy(BASE)
    raw["runs"]["r_s1"] = {"replicate_of": "r", "seed": 1, "human": "g1"}
    raw["runs"]["x"] = replicate
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(raw)
