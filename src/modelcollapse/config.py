"""params.yaml: loading, validation and the merged settings of each run.

Everything is checked before any job starts, and every message names where the
problem is (``runs.<id>.<key>``), so a bad value costs seconds, not a run.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from modelcollapse import budget
from modelcollapse.families import family_exists, get_family
from modelcollapse.regimes import NEEDS_REAL_FRACTION, real_row_count

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "params.schema.yaml"

# Settings a generation's artifacts do not depend on: changing them must not
# invalidate (or re-run) generations that already exist.
NOT_GENERATION_KEYS = ("generations", "chains", "plot_generations")

BUILTIN_DEFAULTS: dict[str, Any] = {
    "regime": "replace",
    "real_fraction": None,
    "seed": 0,
    "chains": 1,
    "options": {},
}


DEFAULT_POOL_SIZE = 100_000  # rows drawn from a known truth
DEFAULT_TEST_SIZE = 10_000


# Run and source ids name directories, DVC stages and Snakemake wildcards: letters,
# digits, '_' and '-', starting with a letter or digit, at most ID_MAX_LENGTH long.
ID_MAX_LENGTH = 64
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


class ConfigError(ValueError):
    """params.yaml is invalid; the message names the file, the run and the key."""


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


class _StrictLoader(yaml.SafeLoader):
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


@dataclass(frozen=True)
class Params:
    """A validated params.yaml."""

    runs: dict[str, dict[str, Any]]
    human: dict[str, dict[str, Any]]
    report: dict[str, Any] = field(default_factory=dict)
    # How much a job may hold (limits.job_memory_mb): checked, never part of a result.
    limits: dict[str, Any] = field(default_factory=dict)

    def run(self, run_id: str) -> dict[str, Any]:
        if run_id not in self.runs:
            raise ConfigError(f"unknown run {run_id!r}; params.yaml defines {sorted(self.runs)}")
        return self.runs[run_id]

    def generation_settings(self, run_id: str) -> dict[str, Any]:
        """The settings a generation's artifacts depend on (Snakemake `params:`)."""
        settings = self.run(run_id)
        return {k: v for k, v in settings.items() if k not in NOT_GENERATION_KEYS}

    def human_source(self, run_id: str) -> dict[str, Any]:
        return self.human[self.run(run_id)["human"]]


@cache
def load_schema() -> dict[str, Any]:
    """params.schema.yaml plus one ``x-families`` entry per schemas/families/*.yaml."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    schema["x-families"] = {
        path.stem: yaml.safe_load(path.read_text())
        for path in sorted((SCHEMA_PATH.parent / "families").glob("*.yaml"))
    }
    return schema


def _where(prefix: str, path: Any) -> str:
    parts = [prefix] + [str(p) for p in path]
    return ".".join(p for p in parts if p)


def _is_integer(_checker: Any, instance: Any) -> bool:
    # JSON Schema counts 3.0 as an integer; Python code downstream does not (range(3.0)).
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


def _message(error: jsonschema.ValidationError) -> str:
    value = error.instance
    if isinstance(value, float) and value.is_integer():
        return f"{error.message} (a whole number is meant: write {int(value)}, not {value})"
    return error.message


def _check(instance: Any, schema: Mapping[str, Any], prefix: str, source: str) -> None:
    validator = _Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [
            f"  {_where(prefix, e.absolute_path) or '(top level)'}: {_message(e)}" for e in errors
        ]
        raise ConfigError(f"{source}: invalid settings\n" + "\n".join(lines))


def _family_schema(family: str, part: str) -> dict[str, Any]:
    return load_schema()["x-families"][family][part]


def _with_schema_defaults(values: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    out = {
        k: copy.deepcopy(v["default"])
        for k, v in schema.get("properties", {}).items()
        if "default" in v
    }
    out.update(copy.deepcopy(dict(values)))
    return out


def validate(raw: Mapping[str, Any], source: str = "params.yaml") -> Params:
    """Validate a parsed params.yaml and return every run's merged settings."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    _check_finite(raw, "", source)
    for section in ("human", "runs"):
        for id_ in raw.get(section) or {}:
            check_id(id_, section, source)
    for name in (raw.get("report") or {}).get("compare") or {}:
        check_id(name, "report.compare", source)
    schema = load_schema()
    _check(raw, schema, "", source)
    limits = dict(raw.get("limits") or {})
    # A family is known when it has a schema file and a module; only the families a
    # statistical source uses are imported (to check their truth), never torch's.
    known = {f for f in schema["x-families"] if family_exists(f)}

    human: dict[str, dict[str, Any]] = {}
    for source_id, spec in raw["human"].items():
        human[source_id] = _validate_human(source_id, spec, schema, known, limits, source)

    defaults = {**BUILTIN_DEFAULTS, **copy.deepcopy(dict(raw.get("defaults") or {}))}
    runs = {
        run_id: _validate_run(run_id, defaults, spec, human, known, source)
        for run_id, spec in raw["runs"].items()
    }

    report = dict(raw.get("report") or {})
    for name, members in report.get("compare", {}).items():
        for run_id in members:
            if run_id not in runs:
                raise ConfigError(f"{source}: report.compare.{name}: unknown run {run_id!r}")
    for run_id, settings in runs.items():
        _check_run_memory(run_id, settings, human[settings["human"]], limits, source)
    return Params(runs=runs, human=human, report=report, limits=limits)


def _validate_human(
    source_id: str,
    spec: Mapping[str, Any],
    schema: Mapping[str, Any],
    known: set[str],
    limits: Mapping[str, Any],
    source: str,
) -> dict[str, Any]:
    """A human source: a known true distribution (``truth``) for a statistical
    family, or real data (``data``: a corpus, a data set) for a neural one."""
    where = f"human.{source_id}"
    fam = spec["family"]
    if fam not in known:
        raise ConfigError(
            f"{source}: {where}.family: unknown family {fam!r}; known: {sorted(known)}"
        )
    merged = _with_schema_defaults(spec, schema["$defs"]["human_source"])
    family_schema = schema["x-families"][fam]
    kind = "truth" if "truth" in family_schema else "data"
    other = "data" if kind == "truth" else "truth"
    if other in spec:
        raise ConfigError(
            f"{source}: {where}.{other}: a {fam!r} source takes {kind!r}, not {other!r}"
        )
    if kind not in spec:
        raise ConfigError(f"{source}: {where}: missing required key {kind!r}")
    _check(spec[kind], family_schema[kind], f"{where}.{kind}", source)
    merged[kind] = _with_schema_defaults(spec[kind], family_schema[kind])
    if kind == "truth":
        merged.setdefault("pool_size", DEFAULT_POOL_SIZE)
        merged.setdefault("test_size", DEFAULT_TEST_SIZE)
        family = get_family(fam)
        width, model = budget.footprint(family, merged["truth"])
        _check_memory(
            where,
            budget.human_bytes(merged, width, model),
            f"pool_size {merged['pool_size']} + test_size {merged['test_size']} rows of "
            f"{width} values, a model of {model} numbers",
            limits,
            source,
        )
        try:
            family.truth_from_spec(merged["truth"])
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{source}: {where}.truth: {exc}") from exc
    return merged


def _validate_run(
    run_id: str,
    defaults: Mapping[str, Any],
    spec: Mapping[str, Any],
    human: Mapping[str, dict[str, Any]],
    known: set[str],
    source: str,
) -> dict[str, Any]:
    where = f"runs.{run_id}"
    settings = {**copy.deepcopy(dict(defaults)), **copy.deepcopy(dict(spec))}
    required = ("family", "human", "generations", "samples_per_generation")
    for key in required:
        if key not in settings:
            raise ConfigError(
                f"{source}: {where}: missing required key {key!r} "
                "(set it in the run or in defaults)"
            )
    fam = settings["family"]
    if fam not in known:
        raise ConfigError(
            f"{source}: {where}.family: unknown family {fam!r}; known: {sorted(known)}"
        )
    if settings["human"] not in human:
        raise ConfigError(
            f"{source}: {where}.human: unknown human source {settings['human']!r}; "
            f"defined: {sorted(human)}"
        )
    src = human[settings["human"]]
    if src["family"] != fam:
        raise ConfigError(
            f"{source}: {where}.human: source {settings['human']!r} holds "
            f"{src['family']!r} data, but the run's family is {fam!r}"
        )
    options_schema = _family_schema(fam, "options")
    _check(settings.get("options") or {}, options_schema, f"{where}.options", source)
    settings["options"] = _with_schema_defaults(settings.get("options") or {}, options_schema)

    regime, gens = settings["regime"], settings["generations"]
    rf = settings.get("real_fraction")
    if regime in NEEDS_REAL_FRACTION and rf is None:
        raise ConfigError(
            f"{source}: {where}.real_fraction: regime {regime!r} needs "
            "real_fraction (a number in [0, 1])"
        )
    if regime not in NEEDS_REAL_FRACTION:
        settings["real_fraction"] = None  # irrelevant; keep it out of the artifacts' identity
    # Real data: the corpus fixes the pool once prepared (check_prepared_pools).
    if "pool_size" in src:
        what = f"human.{settings['human']}.pool_size"
        _check_pool(run_id, settings, src["pool_size"], what, source)
    plot_gens = settings.get("plot_generations")
    if plot_gens is not None:
        bad = [g for g in plot_gens if g >= gens]
        if bad:
            raise ConfigError(
                f"{source}: {where}.plot_generations: {bad} not below generations ({gens})"
            )
    else:
        settings["plot_generations"] = default_plot_generations(gens)
    return settings


def _check_memory(
    where: str, needed: int, what: str, limits: Mapping[str, Any], source: str
) -> None:
    allowed = budget.job_budget_mb(limits)
    if needed > allowed * budget.MB:
        raise ConfigError(
            f"{source}: {where}: a job would need about {budget.describe_bytes(needed)} of "
            f"memory ({what}), over the budget of {allowed} MB per job; lower the sizes, "
            "or raise limits.job_memory_mb in params.yaml if the machine has the memory"
        )


def _check_run_memory(
    run_id: str,
    settings: Mapping[str, Any],
    source_spec: Mapping[str, Any],
    limits: Mapping[str, Any],
    source: str,
) -> None:
    where = f"runs.{run_id}"
    if "truth" not in source_spec:  # a neural family: the job's declared memory
        declared = settings["options"].get("mem_mb")
        if declared is not None:
            _check_memory(
                f"{where}.options.mem_mb", declared * budget.MB, "declared", limits, source
            )
        return
    width, model = budget.footprint(get_family(settings["family"]), source_spec["truth"])
    needed = budget.run_bytes(settings, source_spec, width, model)
    n, chains = settings["samples_per_generation"], settings.get("chains", 1)
    for job, size in needed.items():
        what = (
            f"the {job} job: samples_per_generation {n}, generations {settings['generations']}"
            + (f", chains {chains}" if job == "ensemble" else "")
            + f", regime {settings['regime']}, {width} values per row, a model of {model} "
            "numbers"
        )
        _check_memory(where, size, what, limits, source)


def human_rows_needed(settings: Mapping[str, Any]) -> int:
    """Human pool rows a run uses over all its generations: the first N (generation
    0), and for ``fresh`` real_fraction x N unused rows per later generation. (``mix``
    draws real_fraction x N <= N rows from anywhere in the pool: N rows suffice.)"""
    n = settings["samples_per_generation"]
    if settings["regime"] == "fresh":
        return n + (settings["generations"] - 1) * real_row_count(n, settings["real_fraction"])
    return n


def _check_pool(
    run_id: str, settings: Mapping[str, Any], pool_rows: int, what: str, source: str
) -> None:
    needed = human_rows_needed(settings)
    if needed > pool_rows:
        raise ConfigError(
            f"{source}: runs.{run_id}: needs {needed} human rows but {what} is {pool_rows} "
            f"(regime {settings['regime']!r}, samples_per_generation "
            f"{settings['samples_per_generation']}, generations {settings['generations']}); "
            "lower samples_per_generation, real_fraction or generations"
        )


def check_prepared_pools(
    params: Params, root: str | Path = ".", runs: Iterable[str] | None = None
) -> None:
    """Check runs on real data (whose pool size the corpus fixes) against their prepared
    pools, ``data/human/<id>/pool.parquet``; sources not prepared yet are skipped."""
    from modelcollapse.manifest import row_count
    from modelcollapse.paths import human_file

    for run_id in params.runs if runs is None else runs:
        settings = params.run(run_id)
        human = settings["human"]
        pool = human_file(human, "pool.parquet", root)
        if "pool_size" in params.human[human] or not pool.exists():
            continue
        what = f"the prepared pool of human.{human}"
        _check_pool(run_id, settings, row_count(pool), what, str(pool))


def default_plot_generations(generations: int) -> list[int]:
    """The paper's style of snapshots: the start, a few steps along, and the last."""
    last = generations - 1
    picks = {0, last} | {round(last * f) for f in (0.05, 0.25, 0.5)}
    return sorted(picks)


def load_params(path: str | Path = "params.yaml") -> Params:
    return validate(read_yaml(path), source=str(path))
