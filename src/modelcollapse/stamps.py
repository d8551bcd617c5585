"""Stamps: the key a step was built with, recorded with its outputs.

A stamp is a small JSON file (``{"key", "material", ...}``) written last, after the
step's outputs, so that its presence with the right key means the outputs are
complete and up to date (``modelcollapse.plan``). Generations record their key in
``model.json`` and in their ledger record instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelcollapse import io
from modelcollapse.paths import REPORT_DIR, human_dir, results_dir

STAMP_NAME = ".build.json"


def stamp_path(step: str, name: str | None = None, root: str | Path = ".") -> Path:
    """Where step ``step`` (of run or source ``name``) records its key.

    Directory outputs keep their stamp inside (so it travels with them through DVC);
    the per-run result files keep theirs beside them as a hidden file.
    """
    if step != "report" and name is None:
        raise ValueError(f"step {step!r}: name the run or source")
    if step == "human":
        return human_dir(str(name), root) / STAMP_NAME
    if step in ("metrics", "ensemble"):
        return results_dir(str(name), root) / f".{step}{STAMP_NAME}"
    if step == "figures":
        return results_dir(str(name), root) / "figures" / STAMP_NAME
    if step == "report":
        return Path(root) / REPORT_DIR / STAMP_NAME
    raise ValueError(f"step {step!r} has no stamp file (generations record their key)")


def write_stamp(path: str | Path, key: str, material: dict[str, Any], **extra: Any) -> None:
    """Record that the outputs beside ``path`` were built with ``key``: write it last."""
    io.write_json(path, {"key": key, "material": material, **extra})


def read_stamp(path: str | Path) -> dict[str, Any] | None:
    """A stamp's content, or None if it is missing or does not parse."""
    try:
        stamp = io.read_json(path)
    except io.ArtifactError:
        return None
    return stamp if isinstance(stamp, dict) and isinstance(stamp.get("key"), str) else None
