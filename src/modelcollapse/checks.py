"""Checks on settings that need no schema: ids, finite numbers, YAML without
duplicate keys; and :class:`ConfigError`, which every settings check raises.

(:mod:`modelcollapse.config` re-exports these names; see its docstring.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """params.yaml is invalid; the message names the file, the run and the key."""


# Run and source ids name directories, DVC stages and Snakemake wildcards: letters,
# digits, '_' and '-', starting with a letter or digit, at most ID_MAX_LENGTH long.
ID_MAX_LENGTH = 64
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def check_id(value: Any, where: str, source: str = "params.yaml") -> str:
    """``value`` if it is a safe id, else a ConfigError naming ``where`` and the value."""
    if not isinstance(value, str) or len(value) > ID_MAX_LENGTH or not ID_PATTERN.fullmatch(value):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        length = f" ({len(value)} characters)" if isinstance(value, str) else ""
        raise ConfigError(
            f"{source}: {where}: id {shown}{length} is not allowed: ids are 1 to "
            f"{ID_MAX_LENGTH} letters, digits, '_' or '-', starting with a letter or digit"
        )
    return value


# ------------------------------------------------------------------- reading YAML


# PyYAML's safe loader with libyaml's parser where PyYAML was built with it (the wheels
# are): the same documents, parsed 5-10x faster; every Snakefile parse reads params.yaml
# and the schemas.
SafeLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with :data:`SafeLoader`."""
    return yaml.load(text, Loader=SafeLoader)  # noqa: S506 (a safe loader)


class _StrictLoader(SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (PyYAML keeps
    the last; DVC refuses the file): a silently overridden setting is a wrong run."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            if key in seen:
                raise ConfigError(
                    f"line {line}: duplicate key {key!r} (first given at line {seen[key]}); "
                    "each key may appear once in a mapping"
                )
            seen[key] = line
        except TypeError:  # an unhashable key: the constructor names it below
            continue
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML settings file safely (no tags that build objects), refusing
    duplicate keys; every error names the file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def _check_finite(value: Any, where: str, source: str) -> None:
    """No NaN or infinity anywhere: they pass every range check and poison the data."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(
            f"{source}: {where or '(top level)'}: {value} is not a finite number "
            "(.nan and .inf are not allowed)"
        )
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_finite(v, f"{where}.{k}" if where else str(k), source)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, f"{where}.{i}", source)
