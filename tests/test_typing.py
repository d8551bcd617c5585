"""The package type-checks: mypy over src/modelcollapse (settings in pyproject.toml).

The family contract (``modelcollapse.families.base.Family``) and the run settings
(``modelcollapse.settings.RunSettings``) are typed; this keeps every caller honest.
"""

from __future__ import annotations

import subprocess
import sys

from workflow_utils import ROOT


def test_mypy_finds_no_errors(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Success: no issues found" in result.stdout
