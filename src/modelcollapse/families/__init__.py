"""Family registry: every module in this package that defines ``NAME`` is a family.

Adding a family means adding one module here and one entry in the schema.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from functools import cache
from types import ModuleType

_NOT_FAMILIES = {"base"}


@cache
def registry() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name in _NOT_FAMILIES:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        name = getattr(module, "NAME", None)
        if name is not None:
            found[name] = module
    return found


def get_family(name: str) -> ModuleType:
    """The family module ``name`` (module name and NAME agree by convention).

    Imports only that module: a generation job should not pay for the imports of
    every other family.
    """
    if name.isidentifier() and not name.startswith("_") and name not in _NOT_FAMILIES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
        else:
            if getattr(module, "NAME", None) == name:
                return module
    families = registry()
    if name not in families:
        raise KeyError(f"unknown family {name!r}; known: {sorted(families)}")
    return families[name]


def family_exists(name: str) -> bool:
    """Whether this package has a family module ``name`` (without importing it)."""
    if not name.isidentifier() or name.startswith("_") or name in _NOT_FAMILIES:
        return False
    return importlib.util.find_spec(f"{__name__}.{name}") is not None
