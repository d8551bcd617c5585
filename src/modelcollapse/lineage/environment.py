"""The circumstances of a build: the code's git commit and the package versions.

A ledger record (``modelcollapse.lineage.ledger``) stores them beside its
deterministic fields, under ``code`` and ``packages``: they are covered by the
record's ``record_hash`` but not by its ``content_hash``, so a byte-identical rebuild
at another commit or with other package versions keeps the chain whole. Both are
computed once per process.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from modelcollapse.lineage.records import LEDGER_DIR

UNKNOWN = "unknown"
PACKAGES = (
    "modelcollapse",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "safetensors",
    "threadpoolctl",
    "snakemake",
    "dvc",
    "prov",
)
# Paths the workflow itself writes while it runs: they do not make the code dirty.
OUTPUT_PATHS = (LEDGER_DIR, "data", "results", "reports", "logs", ".snakemake", "dvc.lock")


# The checkout whose code runs: the repository holding this package's source files.
_CODE_DIR = Path(__file__).resolve().parents[1]


@functools.cache
def _code_version(code_dir: str) -> dict[str, Any]:
    # One git process (every generation job records this): the commit from status's
    # branch header, dirty from its entries, over the whole repository (":/") but for
    # what the workflow writes; DVC adds its outputs to .gitignore files: bookkeeping,
    # not code.
    excludes = [f":(top,exclude){p}" for p in OUTPUT_PATHS] + [":(top,exclude,glob)**/.gitignore"]
    try:
        status = subprocess.run(
            [
                "git",
                "--no-optional-locks",
                "status",
                "--porcelain=v2",
                "--branch",
                "--untracked-files=normal",
                "--",
                ":/",
                *excludes,
            ],
            cwd=code_dir,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):  # no git, or not a repository
        return {"commit": UNKNOWN, "dirty": None}
    commit = next((line.split()[2] for line in status if line.startswith("# branch.oid ")), "")
    if not re.fullmatch(r"[0-9a-f]{40,64}", commit):  # "(initial)": no commit yet
        return {"commit": UNKNOWN, "dirty": None}
    return {"commit": commit, "dirty": any(not line.startswith("#") for line in status)}


def code_version(code_dir: str | Path | None = None) -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the git checkout holding the code that runs.

    That is the checkout of this package's source files (``code_dir``, by default
    the package itself), not necessarily the workflow root: with one environment
    shared by two clones, the code that runs is the installed one. ``dirty``
    ignores what the workflow writes (:data:`OUTPUT_PATHS` and the ``.gitignore``
    entries DVC adds for its outputs). Outside a git repository (or before its
    first commit) the commit is ``"unknown"`` and dirty is null. Computed once per
    process.
    """
    return dict(_code_version(str(Path(code_dir or _CODE_DIR).resolve())))


code_version.cache_clear = _code_version.cache_clear  # type: ignore[attr-defined]


_DIST_INFO = re.compile(r"(?P<name>[^-]+)-(?P<version>[^-]+)\.dist-info")


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


@functools.cache
def _package_versions() -> dict[str, str | None]:
    """Each package's version from the name of its ``.dist-info`` directory, the first
    on ``sys.path`` as the import system finds it: a directory listing per path entry
    instead of importlib.metadata, which every generation job would pay for (it reads
    the metadata files); a package installed otherwise falls back to it."""
    wanted = {_normalised(name): name for name in PACKAGES}
    out: dict[str, str | None] = {"python": platform.python_version()}
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for item in names:
            m = _DIST_INFO.fullmatch(item)
            if m and (key := _normalised(m["name"])) in wanted and key not in found:
                found[key] = m["version"]
    for key, name in wanted.items():
        out[name] = found.get(key) or _metadata_version(name)
    return out


def _metadata_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str | None]:
    """Versions of Python and the packages the artifacts depend on (null if absent)."""
    return dict(_package_versions())
