"""Keys, code fingerprints, the planner and atomic writes, without running a workflow."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pytest
from workflow_utils import TINY_PARAMS

from modelcollapse import io
from modelcollapse.config import ConfigError, validate
from modelcollapse.fingerprint import (
    FingerprintError,
    _parse_source,
    covered,
    step_fingerprint,
    step_modules,
)
from modelcollapse.human import prepare_human
from modelcollapse.keys import Keys
from modelcollapse.paths import gen_file, job_of_path
from modelcollapse.pipeline import run_generation
from modelcollapse.plan import Planner


def digest(source: str, name: str = "modelcollapse.sub.mod") -> tuple:
    return _parse_source(name, Path("mod.py"), source.encode())


BASE = '''"""A module."""
import math
from . import sibling


def area(r):
    """Area of a disc."""
    from modelcollapse.inner import helper  # a function-level import counts
    return math.pi * r * r
'''


def test_comments_docstrings_and_formatting_are_not_code():
    base = digest(BASE)
    reformatted = (
        BASE.replace('"""Area of a disc."""', '"""The area."""')
        .replace("r * r", "r*r  # squared")
        .replace('"""A module."""', "# no docstring")
    )
    assert digest(reformatted)[0] == base[0]
    assert digest(BASE.replace("r * r", "r ** 2"))[0] != base[0]
    assert digest(BASE + "\nEDITED = True\n")[0] != base[0]


def test_imports_are_read_everywhere_but_under_type_checking():
    _, imported, _ = digest(
        BASE + "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import modelcollapse.x\n"
    )
    assert "modelcollapse.sub.sibling" in imported  # relative, resolved
    assert "modelcollapse.inner" in imported and "modelcollapse.inner.helper" in imported
    assert "modelcollapse.x" not in imported


def test_each_step_runs_only_the_modules_it_imports():
    gmm = step_modules("generation", "gmm")
    assert {"modelcollapse.families.gmm", "modelcollapse.families.gaussian"} <= set(gmm)
    assert "modelcollapse.lineage.ledger" in gmm  # through the lazy lineage package
    assert not {"modelcollapse.plots", "modelcollapse.report", "modelcollapse.config"} & set(gmm)
    assert "modelcollapse.families.lm" not in gmm
    figures = step_modules("figures", "gaussian")
    assert "modelcollapse.plots" in figures and "modelcollapse.pipeline" not in figures
    assert not any(m.startswith("modelcollapse.families.") for m in step_modules("metrics"))
    assert step_fingerprint("generation", "gmm") != step_fingerprint("generation", "gaussian")
    report = step_modules("report", ("vae", "gaussian"))
    assert {"modelcollapse.families.vae", "modelcollapse.families.gaussian"} <= set(report)
    with pytest.raises(ValueError, match="runs a family"):
        step_modules("generation")


def test_a_step_that_loads_an_uncovered_module_fails():
    import sys

    sys.modules.pop("modelcollapse.report", None)
    with pytest.raises(FingerprintError, match="modelcollapse.report"), covered("metrics"):
        import modelcollapse.report  # noqa: F401  (not the metrics step's code)


PARAMS = {
    "defaults": {"samples_per_generation": 20, "seed": 3},
    "human": {"g1": TINY_PARAMS["human"]["g1"]},
    "runs": {
        "a": {"family": "gaussian", "human": "g1", "generations": 3},
        "b": {"family": "gaussian", "human": "g1", "generations": 2, "regime": "accumulate"},
    },
    "report": {},
}


def with_changes(**run_a) -> Keys:
    raw = copy.deepcopy(PARAMS)
    raw["runs"]["a"].update(run_a)
    return Keys(validate(raw))


def test_generation_keys_chain_and_leave_out_what_generations_do_not_read():
    keys = Keys(validate(PARAMS))
    chain = [keys.generation("a", g) for g in range(3)]
    assert len(set(chain)) == 3
    longer = with_changes(generations=9, chains=50, plot_generations=[0, 8])
    assert [longer.generation("a", g) for g in range(3)] == chain
    assert longer.key("metrics", "a") != keys.key("metrics", "a")
    seeded = with_changes(seed=4)
    assert all(seeded.generation("a", g) != chain[g] for g in range(3))
    assert seeded.generation("b", 1) == keys.generation("b", 1)  # another run: untouched
    assert seeded.key("report") != keys.key("report")


def test_runs_that_differ_only_in_what_generation_0_does_not_read_share_it():
    """One root per set of runs whose generation-0 settings are equal: the regime, its
    real fraction and the run's length do not enter generation 0; the seed, N, the
    family's options and the human data do."""
    raw = copy.deepcopy(PARAMS)
    raw["runs"] = {
        "rep": {"family": "gaussian", "human": "g1", "generations": 3},
        "mix": {"family": "gaussian", "human": "g1", "generations": 5, "regime": "mix",
                "real_fraction": 0.5, "chains": 7, "plot_generations": [0, 4]},
        "acc": {"family": "gaussian", "human": "g1", "generations": 2, "regime": "accumulate"},
        "seed": {"family": "gaussian", "human": "g1", "generations": 2, "seed": 4},
        "n": {"family": "gaussian", "human": "g1", "generations": 2, "samples_per_generation": 31},
        "mle": {"family": "gaussian", "human": "g1", "generations": 2,
                "options": {"estimator": "mle"}},
        "g2": {"family": "gaussian", "human": "g2", "generations": 2},
    }  # fmt: skip
    raw["human"]["g2"] = raw["human"]["g1"]
    params = validate(raw)
    roots = params.roots()
    assert list(roots.values()) == [["rep", "mix", "acc"], ["seed"], ["n"], ["mle"], ["g2"]]
    shared = params.run("rep").root
    assert shared.startswith("roots/g1/gaussian-s") and params.run("g2").root.startswith(
        "roots/g2/"
    )
    keys = Keys(params)
    assert keys.generation("rep", 0) == keys.generation("mix", 0) == keys.generation("acc", 0)
    assert len({keys.generation(r, 1) for r in ("rep", "mix", "acc")}) == 3
    assert len({keys.generation(r, 0) for r in raw["runs"]}) == 5
    # The root's material holds no run id and no regime.
    material = keys.root_material(shared)
    assert material["root"] == shared and "regime" not in material["settings"]
    assert "run" not in material and material == keys.generation_material("mix", 0)
    # A run cannot be called "roots": the roots' ledger is lineage/roots/.
    raw["runs"]["roots"] = raw["runs"].pop("n")
    with pytest.raises(ConfigError, match="'roots' is not allowed as a run id"):
        validate(raw)


@pytest.fixture
def built(tmp_path) -> tuple[Path, Keys]:
    """A run built with the step functions, stamps and keys included."""
    root = tmp_path / "study"
    params = validate(PARAMS)
    keys = Keys(params)
    prepare_human("g1", params.human["g1"], root, stamp=keys.stamp("human", "g1"))
    for g in range(3):
        run_generation("a", g, params.run("a"), root, key=keys.generation("a", g))
    return root, keys


def test_the_planner_reads_keys_and_content_not_mtimes(built):
    root, keys = built
    params = keys.params
    assert [s.state for s in Planner(params, root).run_generations("a")] == ["fresh"] * 3
    for path in root.rglob("*"):  # as after a checkout: arbitrary modification times
        os.utime(path, (1_000_000 + hash(path.name) % 1000,) * 2)
    assert [s.state for s in Planner(params, root).run_generations("a")] == ["fresh"] * 3
    changed = validate(
        {**PARAMS, "runs": {**PARAMS["runs"], "a": {**PARAMS["runs"]["a"], "seed": 5}}}
    )
    statuses = Planner(changed, root).run_generations("a")
    # Another seed is another generation 0: a root not built yet.
    root_dir = f"data/{changed.run('a').root}/gen_0000"
    assert statuses[0].state == "missing" and not (root / root_dir).exists()
    assert statuses[1].state == "stale" and "settings changed: seed" in statuses[1].reason
    assert statuses[2].reason == "generation 1 will be rebuilt"
    # A parent rebuilt with other content makes its child stale, through the ledger.
    record = root / "lineage/a/gen_0001.json"
    text = record.read_text()
    record.write_text(text.replace('"content_hash": "', '"content_hash": "0', 1))
    statuses = Planner(params, root).run_generations("a")
    assert statuses[2].state == "stale" and "generation 1 has other content" in statuses[2].reason
    record.write_text(text)
    gen_file("a", 2, "samples.parquet", root).unlink()
    status = Planner(params, root).generation("a", 2)
    assert (status.state, status.partial) == ("missing", True)
    shutil.rmtree(gen_file("a", 2, "x", root).parent)
    status = Planner(params, root).generation("a", 2)
    assert (status.state, status.partial) == ("missing", False)


def test_temporary_files_never_land_among_the_outputs(tmp_path):
    root = tmp_path / "wf"
    (root / "data/runs/r/gen_0000").mkdir(parents=True)
    (root / "dvc.yaml").write_text("stages: {}\n")
    target = root / "data/runs/r/gen_0000/model.json"
    with io.atomic_path(target) as tmp:
        assert tmp.parent == (root / ".modelcollapse/tmp").resolve()
        tmp.write_text("{}")
        assert list(target.parent.iterdir()) == []  # killed here: nothing in the outputs
    assert target.read_text() == "{}"
    with io.atomic_dir(root / "reports") as tmp:
        assert tmp.parent == (root / ".modelcollapse/tmp").resolve()
    outside = tmp_path / "elsewhere" / "x.json"  # no workflow root: beside the file
    with io.atomic_path(outside) as tmp:
        assert tmp.parent == outside.parent.resolve()
        tmp.write_text("1")


@pytest.mark.parametrize(
    ("path", "job"),
    [
        ("data/runs/a/gen_0003/model.json", ("generation", "a", 3)),
        (
            "data/roots/g1/gaussian-s0-0a1b2c3d/gen_0000",
            ("generation", "roots/g1/gaussian-s0-0a1b2c3d", 0),
        ),
        ("data/human/g1", ("human", "g1", None)),
        ("results/a/summary.json", ("metrics", "a", None)),
        ("results/a/ensemble.csv", ("ensemble", "a", None)),
        ("results/a/figures/metric_x.png", ("figures", "a", None)),
        ("reports/", ("report", None, None)),
        ("params.yaml", None),
    ],
)
def test_job_of_path(path, job):
    assert job_of_path(path) == job


def test_generation_keys_are_the_digest_of_their_material():
    """Keys.generation assembles the canonical JSON from parts serialised once per run;
    it must equal the digest of the full material, chained through every parent."""
    from modelcollapse.keys import digest

    params = validate(copy.deepcopy(TINY_PARAMS))
    for run in params.runs:
        fast, slow = Keys(params), Keys(params)
        parent = None
        parent = digest(slow.root_material(params.run(run).root))  # generation 0: its root's
        assert fast.generation(run, 0) == parent
        for g in range(1, 12):
            material = {**slow.generation_material_base(run), "generation": g, "parent": parent}
            parent = digest(material)
            assert fast.generation(run, g) == parent, (run, g)
