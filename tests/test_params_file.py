"""params.yaml as DVC writes it back: `dvc exp run -S` changes only the lines it sets.

DVC applies ``-S`` overrides with ``dvc.utils.hydra.apply_overrides`` (Hydra's
override grammar on a ruamel round trip); these tests call that same function on a
copy of the repository's params.yaml.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def params_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "params.yaml"
    shutil.copyfile(ROOT / "params.yaml", copy)
    return copy


def _apply(path: Path, *overrides: str) -> list[str]:
    from dvc.utils.hydra import apply_overrides

    before = path.read_text(encoding="utf-8").splitlines()
    apply_overrides(str(path), list(overrides))
    after = path.read_text(encoding="utf-8").splitlines()
    return [
        line
        for line in difflib.unified_diff(before, after, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_setting_a_value_to_itself_leaves_the_file_byte_identical(params_copy):
    original = params_copy.read_bytes()
    generations = yaml.safe_load(original)["runs"]["gauss_replace"]["generations"]
    assert _apply(params_copy, f"runs.gauss_replace.generations={generations}") == []
    assert params_copy.read_bytes() == original


@pytest.mark.parametrize(
    ("override", "removed", "added"),
    [
        ("runs.gauss_replace.generations=120", "    generations: 100", "    generations: 120"),
        ("defaults.seed=7", "  seed: 0", "  seed: 7"),
        ("runs.lm_mix.real_fraction=0.2", "    real_fraction: 0.1", "    real_fraction: 0.2"),
    ],
)
def test_one_override_changes_one_line(params_copy, override, removed, added):
    assert _apply(params_copy, override) == [f"-{removed}", f"+{added}"]


def test_a_new_key_adds_one_line_and_every_comment_survives(params_copy):
    comments = [ln for ln in params_copy.read_text().splitlines() if ln.lstrip().startswith("#")]
    assert _apply(params_copy, "+runs.gmm_replace.seed=7") == ["+    seed: 7"]
    after = [ln for ln in params_copy.read_text().splitlines() if ln.lstrip().startswith("#")]
    assert after == comments
    assert yaml.safe_load(params_copy.read_text())["runs"]["gmm_replace"]["seed"] == 7
