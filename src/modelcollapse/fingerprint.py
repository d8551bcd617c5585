"""Code fingerprints: the part of a step's identity that is code.

A step's fingerprint is the sha256 of the normalised source of every module of this
package that the step can run: its entry modules and, transitively, every module they
import, at module level or inside a function (a conservative closure; imports under
``if TYPE_CHECKING:`` do not run and do not count). A module enters as its syntax tree
without docstrings, so comments, docstrings and formatting never make anything rerun.

The closure follows static imports only. The family registry imports a family's
module by name at run time, so a step that runs a family names the family's module as
an entry (a family registered by another package brings that package's modules into
the closure); a package that loads its names lazily (``lineage``) lists them in a literal
``_EXPORTS`` dict, which the closure reads. Editing ``families/gmm.py`` changes the
fingerprint of the gmm steps only; editing ``plots.py``, that of the figures and the
report. See docs/architecture.md ("What reruns when").
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path

PACKAGE = "modelcollapse"

# The modules each step runs, beside the run's family module (for the steps in
# FAMILY_STEPS). One place for this fact: the keys, the jobs' self-check and the tests
# all read it.
STEP_ENTRIES: dict[str, tuple[str, ...]] = {
    "human": ("modelcollapse.human",),
    "generation": ("modelcollapse.pipeline",),
    "metrics": ("modelcollapse.results",),
    "ensemble": ("modelcollapse.ensemble_step",),
    "figures": ("modelcollapse.plots",),
    "report": ("modelcollapse.report", "modelcollapse.lineage.summary"),
}
FAMILY_STEPS = ("human", "generation", "ensemble", "figures", "report")


class FingerprintError(RuntimeError):
    """A module of a step cannot be found or parsed."""


def family_module(family: str) -> str:
    from modelcollapse.families import family_module as registered

    return registered(family)


def _scope(entries: Iterable[str]) -> frozenset[str]:
    """The top-level packages a closure follows: this package and those of its entry
    modules (a family registered by another package brings that package in). Looking
    no further than the entries keeps a job from scanning every installed package's
    entry points to fingerprint a built-in family's step."""
    return frozenset({PACKAGE, *(e.partition(".")[0] for e in entries)})


# The package that runs the steps is the one this module belongs to.
_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def _origin(name: str) -> Path | None:
    """The source file of module ``name`` (of this package or a family's), or None."""
    if name.partition(".")[0] != PACKAGE:  # a registered family's package
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
        origin = spec.origin if spec is not None else None
        return Path(origin) if origin and origin.endswith(".py") else None
    base = _PACKAGE_DIR.joinpath(*name.split(".")[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _lazy_exports(tree: ast.Module) -> dict[str, str]:
    """A package's literal ``_EXPORTS = {name: submodule}`` (its lazy ``__getattr__``)."""
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets)
            and isinstance(node.value, ast.Dict)
        ):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return {}
            return {str(k): str(v) for k, v in value.items()}
    return {}


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "modelcollapse" / "fingerprints"


@cache
def _parse(name: str) -> tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(normalised-tree digest, imported names, lazy exports) of module ``name``.

    Parsing is the slow part of a fingerprint, so results are kept in a user cache
    keyed by the module's name and the sha256 of its bytes (content-addressed: an
    entry can never describe other code)."""
    path = _origin(name)
    if path is None:
        raise FingerprintError(f"module {name} has no Python source to fingerprint")
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise FingerprintError(f"cannot read {path} ({name}): {exc}") from exc
    entry = _cache_dir() / hashlib.sha256(name.encode() + b"\0" + source).hexdigest()
    try:
        digest, imported, exports = json.loads(entry.read_text(encoding="utf-8"))
        return digest, tuple(imported), tuple(tuple(e) for e in exports)
    except (OSError, ValueError, TypeError):
        pass
    result = _parse_source(name, path, source)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result), encoding="utf-8")
        os.replace(tmp, entry)
    except OSError:
        pass  # a read-only home: parse again next time
    return result


def _parse_source(
    name: str, path: Path, source: bytes
) -> tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]:
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise FingerprintError(f"cannot parse {path} ({name}): {exc}") from exc
    is_package = path.name == "__init__.py"
    exports = _lazy_exports(tree)
    imported: list[str] = []

    def visit(nodes: Iterable[ast.AST]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                imported.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = (
                    _resolve_relative(name, is_package, node.level, node.module)
                    if node.level
                    else node.module or ""
                )
                imported.append(base)
                imported.extend(f"{base}.{alias.name}" for alias in node.names)
            visit(ast.iter_child_nodes(node))

    visit(tree.body)
    _strip_docstrings(tree)
    digest = hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()
    return digest, tuple(imported), tuple(sorted(exports.items()))


def _is_module(name: str) -> bool:
    return _origin(name) is not None


@cache
def closure(entries: tuple[str, ...]) -> tuple[str, ...]:
    """Every module of the package the ``entries`` can run, with their parent packages."""
    scope = _scope(entries)
    seen: set[str] = set()
    pending = list(entries)
    while pending:
        name = pending.pop()
        if name in seen or name.partition(".")[0] not in scope:
            continue
        if not _is_module(name):
            # ``from pkg import name``: a function or class of pkg, or a lazy export.
            parent, _, attr = name.rpartition(".")
            if parent and _is_module(parent):
                exports = dict(_parse(parent)[2])
                if attr in exports:
                    pending.append(f"{parent}.{exports[attr]}")
                pending.append(parent)
                continue
            raise FingerprintError(f"{name} is imported but no such module exists")
        seen.add(name)
        parts = name.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages
        pending.extend(_parse(name)[1])
    return tuple(sorted(seen))


Families = str | tuple[str, ...] | None


def step_entries(step: str, family: Families = None) -> tuple[str, ...]:
    """The modules step ``step`` starts from: with the family's module for a family step
    (the report, which reads every run, takes the tuple of the study's families)."""
    if step not in STEP_ENTRIES:
        raise KeyError(f"unknown step {step!r}; known: {sorted(STEP_ENTRIES)}")
    entries = STEP_ENTRIES[step]
    if step in FAMILY_STEPS:
        if family is None:
            raise ValueError(f"step {step!r} runs a family: name it")
        families = (family,) if isinstance(family, str) else tuple(sorted(set(family)))
        entries = (*entries, *map(family_module, families))
    return tuple(entries)


def step_modules(step: str, family: Families = None) -> tuple[str, ...]:
    """Every module step ``step`` can run (:func:`closure` of its entries)."""
    return closure(step_entries(step, family))


@cache
def step_fingerprint(step: str, family: Families = None) -> str:
    """sha256 over the normalised source of every module the step runs."""
    h = hashlib.sha256()
    for name in step_modules(step, family):
        h.update(f"{name}\0{_parse(name)[0]}\n".encode())
    return h.hexdigest()


def unexpected_modules(loaded: Iterable[str], step: str, family: Families = None) -> list[str]:
    """Package modules a step loaded that its fingerprint does not cover (should be none)."""
    entries = step_entries(step, family)
    allowed, scope = set(closure(entries)), _scope(entries)
    return sorted(m for m in loaded if m.partition(".")[0] in scope and m not in allowed)


@contextlib.contextmanager
def covered(step: str, family: Families = None) -> Iterator[None]:
    """Run a step, then check that the package modules it loaded are all covered by
    its fingerprint: otherwise an edit to one of them would not rerun it."""
    before = set(sys.modules)
    yield
    extra = unexpected_modules(set(sys.modules) - before, step, family)
    if extra:
        raise FingerprintError(
            f"step {step!r} ran modules its code fingerprint does not cover: {extra}; "
            "add their importer to modelcollapse.fingerprint.STEP_ENTRIES"
        )
