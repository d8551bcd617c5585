"""The family registry: family name -> :class:`~modelcollapse.families.base.Family`.

The families of this package are listed by name (``BUILTIN``); a package outside this
repository adds its own through the entry-point group ``modelcollapse.families``
(``name = "package.module:FAMILY"`` in its ``pyproject.toml``; the README's "Adding a
family"). Nothing is imported until a family is asked for, and then only its module:
reading params.yaml or a generation job never pays for torch unless a run uses a
neural family.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path

from modelcollapse.families.base import Family, builtin_schema

ENTRY_POINT_GROUP = "modelcollapse.families"

# name -> the module that defines its FAMILY (each name is its module's name).
BUILTIN: dict[str, str] = {
    name: f"{__name__}.{name}"
    for name in ("categorical", "gaussian", "gmm", "linear_regression", "lm", "vae")
}


@cache
def _external() -> dict[str, str]:
    """Families other packages register: name -> "module:attribute"."""
    from importlib.metadata import entry_points  # scans every installed package: on demand

    found: dict[str, str] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in BUILTIN:
            raise ValueError(
                f"entry point {point.value!r} registers family {point.name!r}, which "
                "this package defines itself; choose another name"
            )
        found[point.name] = point.value
    return found


def known_families() -> list[str]:
    """Every family name, built in or registered, without importing any of them."""
    return sorted({*BUILTIN, *_external()})


def family_exists(name: str) -> bool:
    return name in BUILTIN or name in _external()


def family_module(name: str) -> str:
    """The module that defines family ``name`` (what its code fingerprint starts from)."""
    if name in BUILTIN:
        return BUILTIN[name]
    if name in _external():
        return _external()[name].partition(":")[0]
    raise KeyError(f"unknown family {name!r}; known: {known_families()}")


@cache
def get_family(name: str) -> Family:
    """The family ``name``, importing its module (and no other family's)."""
    module_name = family_module(name)
    attribute = "FAMILY"
    if name not in BUILTIN:
        attribute = _external()[name].partition(":")[2] or attribute
    family = getattr(importlib.import_module(module_name), attribute, None)
    if not isinstance(family, Family):
        raise TypeError(f"{module_name}.{attribute} is not a modelcollapse Family")
    if family.name != name:
        raise TypeError(f"{module_name}.{attribute} is family {family.name!r}, not {name!r}")
    return family


def schema_path(name: str) -> Path:
    """Family ``name``'s schema file; a built-in family's is read without importing it."""
    if name in BUILTIN:
        return builtin_schema(name)
    return get_family(name).schema
