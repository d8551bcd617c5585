"""params.yaml: loading, validation and the merged settings of each run.

Everything is checked before any job starts, and every message names where the
problem is (``runs.<id>.<key>``), so a bad value costs seconds, not a run.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from modelcollapse import budget
from modelcollapse.checks import (  # noqa: F401  (re-exported: the rules and tests read them)
    ID_MAX_LENGTH,
    ID_PATTERN,
    ConfigError,
    _check_finite,
    check_id,
    read_yaml,
    safe_load_yaml,
)
from modelcollapse.families import family_exists, get_family, known_families, schema_path
from modelcollapse.families.base import _read_schema, schema_defaults
from modelcollapse.regimes import NEEDS_REAL_FRACTION, real_row_count
from modelcollapse.settings import NOT_GENERATION_KEYS, ROOTS, Params, RunSettings  # noqa: F401

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "params.schema.yaml"
# Where validation puts the replicate groups (runs.<id>.replicate_of): the report's.
REPLICATES = "replicates"
# Keys of a human source that only a known truth takes (a corpus fixes its own sizes).
TRUTH_ONLY_KEYS = ("pool_size", "test_size")


@cache
def load_schema() -> dict[str, Any]:
    """params.schema.yaml (a family's own schema: :func:`family_schema`)."""
    return safe_load_yaml(SCHEMA_PATH.read_text())


def family_schema(family: str) -> dict[str, Any]:
    """The schema file of ``family``: ``truth`` or ``data``, and ``options``."""
    return _read_schema(schema_path(family))


def _where(prefix: str, path: Any) -> str:
    parts = [prefix] + [str(p) for p in path]
    return ".".join(p for p in parts if p)


def _is_integer(_checker: Any, instance: Any) -> bool:
    # JSON Schema counts 3.0 as an integer; Python code downstream does not (range(3.0)).
    return isinstance(instance, int) and not isinstance(instance, bool)


@cache
def _validator_class() -> Any:
    """Draft 2020-12 with Python's notion of an integer (jsonschema is imported here:
    a job handed validated settings never pays for it)."""
    import jsonschema

    return jsonschema.validators.extend(
        jsonschema.Draft202012Validator,
        type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
    )


def _message(error: Any) -> str:  # a jsonschema.ValidationError
    value = error.instance
    if isinstance(value, float) and value.is_integer():
        return f"{error.message} (a whole number is meant: write {int(value)}, not {value})"
    return error.message


def _check(instance: Any, schema: Mapping[str, Any], prefix: str, source: str) -> None:
    validator = _validator_class()(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [
            f"  {_where(prefix, e.absolute_path) or '(top level)'}: {_message(e)}" for e in errors
        ]
        raise ConfigError(f"{source}: invalid settings\n" + "\n".join(lines))


def family_options(
    family: str,
    given: Mapping[str, Any] | None = None,
    where: str = "options",
    source: str = "options",
) -> dict[str, Any]:
    """A family's options checked against its schema, every default filled in: what
    ``build_model`` and ``batched`` expect (validation builds them for each run)."""
    schema = family_schema(family)["options"]
    _check(given or {}, schema, where, source)
    return _with_schema_defaults(given or {}, schema)


def make_run_settings(family: str, **given: Any) -> RunSettings:
    """Settings of one run outside a params.yaml (tests, notebooks, benchmarks): the
    run schema's and the family's defaults filled in, the options checked; the human
    source is not (``human`` defaults to ``"human"``)."""
    schema = load_schema()["$defs"]["run_settings"]
    values = {**schema_defaults(schema), "human": "human", **given, "family": family}
    _check(values, schema, "", "run settings")
    values["options"] = family_options(family, values["options"])
    if values["regime"] not in NEEDS_REAL_FRACTION:
        values["real_fraction"] = None
    values.setdefault("plot_generations", default_plot_generations(values["generations"]))
    return RunSettings.from_dict(values)


def _with_schema_defaults(values: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    return {**schema_defaults(schema), **copy.deepcopy(dict(values))}


def validate(raw: Mapping[str, Any], source: str = "params.yaml") -> Params:
    """Validate a parsed params.yaml and return every run's merged settings."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    _check_finite(raw, "", source)
    for section in ("human", "runs"):
        for id_ in raw.get(section) or {}:
            check_id(id_, section, source)
    if ROOTS in (raw.get("runs") or {}):
        raise ConfigError(
            f"{source}: runs: {ROOTS!r} is not allowed as a run id: lineage/{ROOTS}/ and "
            f"data/{ROOTS}/ hold the generation 0 that runs share"
        )
    for name in (raw.get("report") or {}).get("compare") or {}:
        check_id(name, "report.compare", source)
    schema = load_schema()
    _check(raw, schema, "", source)
    limits = dict(raw.get("limits") or {})
    # Families are known by name (built in, or registered by an entry point); only the
    # families a statistical source uses are imported (to check their truth).
    known = _KnownFamilies()

    human: dict[str, dict[str, Any]] = {}
    for source_id, spec in raw["human"].items():
        human[source_id] = _validate_human(source_id, spec, schema, known, limits, source)

    defaults = {
        **schema_defaults(schema["$defs"]["run_settings"]),
        **copy.deepcopy(dict(raw.get("defaults") or {})),
    }
    if "replicate_of" in defaults:
        raise ConfigError(f"{source}: defaults.replicate_of: a run's own key, not a default")
    runs = {
        run_id: _validate_run(run_id, defaults, spec, human, known, source)
        for run_id, spec in raw["runs"].items()
        if "replicate_of" not in spec
    }
    replicates = _replicates(raw["runs"], runs, source)
    for run_id, base in ((r, b) for b, members in replicates.items() for r in members):
        runs[run_id] = dataclasses.replace(runs[base], seed=raw["runs"][run_id]["seed"])
    runs = {run_id: runs[run_id] for run_id in raw["runs"]}  # params.yaml's order

    report = dict(raw.get("report") or {})
    if replicates:  # derived: the report draws each group as one setting across seeds
        report[REPLICATES] = replicates
    for name, members in report.get("compare", {}).items():
        for run_id in members:
            if run_id not in runs:
                raise ConfigError(f"{source}: report.compare.{name}: unknown run {run_id!r}")
    for run_id, settings in runs.items():
        budget.check_run_memory(run_id, settings, human[settings.human], limits, source)
    return Params(runs=runs, human=human, report=report, limits=limits)


def _replicates(
    specs: Mapping[str, Mapping[str, Any]], runs: Mapping[str, RunSettings], source: str
) -> dict[str, list[str]]:
    """``{run: [its replicates]}`` from the runs' ``replicate_of``. A replicate names a
    run that is not itself a replicate and gives its own ``seed`` and that run's
    ``human`` (dvc.yaml's stages read each run's human source) and nothing else; no two
    chains of a group share a seed (they would be the same chain)."""
    groups: dict[str, list[str]] = {}
    for run_id, spec in specs.items():
        if "replicate_of" not in spec:
            continue
        where = f"runs.{run_id}"
        base = spec["replicate_of"]
        if base not in runs:
            what = "is itself a replicate" if base in specs else "is not a run"
            raise ConfigError(f"{source}: {where}.replicate_of: {base!r} {what}")
        extra = sorted(set(spec) - {"replicate_of", "seed", "human"})
        if extra:
            raise ConfigError(
                f"{source}: {where}: a replicate takes only its seed (and its run's human "
                f"source); every other setting is that of {base!r}: remove {', '.join(extra)}"
            )
        for key in ("seed", "human"):
            if key not in spec:
                raise ConfigError(f"{source}: {where}: missing required key {key!r}")
        if spec["human"] != runs[base].human:
            raise ConfigError(
                f"{source}: {where}.human: {spec['human']!r}, but {base!r} trains on "
                f"{runs[base].human!r} (a replicate repeats it for dvc.yaml)"
            )
        groups.setdefault(base, []).append(run_id)
    for base, members in groups.items():
        seeds = {runs[base].seed: base}
        for run_id in members:
            seed = specs[run_id]["seed"]
            if seed in seeds:
                raise ConfigError(
                    f"{source}: runs.{run_id}.seed: {seed} is also the seed of "
                    f"{seeds[seed]!r} (the same chain twice)"
                )
            seeds[seed] = run_id
    return groups


def _validate_human(
    source_id: str,
    spec: Mapping[str, Any],
    schema: Mapping[str, Any],
    known: _KnownFamilies,
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
    own = family_schema(fam)
    kind = "truth" if "truth" in own else "data"
    merged = _with_schema_defaults(spec, schema["$defs"]["human_source"])
    if kind == "data":  # the corpus fixes the pool: no default size
        merged = {k: v for k, v in merged.items() if k not in TRUTH_ONLY_KEYS or k in spec}
    other = "data" if kind == "truth" else "truth"
    if other in spec:
        raise ConfigError(
            f"{source}: {where}.{other}: a {fam!r} source takes {kind!r}, not {other!r}"
        )
    if kind not in spec:
        raise ConfigError(f"{source}: {where}: missing required key {kind!r}")
    _check(spec[kind], own[kind], f"{where}.{kind}", source)
    merged[kind] = _with_schema_defaults(spec[kind], own[kind])
    if kind == "truth":
        family = get_family(fam)
        width, model = budget.footprint(family, merged["truth"])
        budget.check_memory(
            where,
            budget.human_bytes(merged, width, model),
            f"pool_size {merged['pool_size']} + test_size {merged['test_size']} rows of "
            f"{width} values, a model of {model} numbers",
            limits,
            source,
        )
        assert family.truth_from_spec is not None  # a family whose schema has `truth`
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
    known: _KnownFamilies,
    source: str,
) -> RunSettings:
    where = f"runs.{run_id}"
    if "human" not in spec:
        # dvc.yaml's stages read runs.<id>.human as written (DVC knows no defaults).
        raise ConfigError(
            f"{source}: {where}: missing required key 'human' (each run names its own "
            "human source: dvc.yaml's stages read it from the run, not from defaults)"
        )
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
    settings["options"] = family_options(fam, settings["options"], f"{where}.options", source)

    regime, gens = settings["regime"], settings["generations"]
    if regime in NEEDS_REAL_FRACTION and settings["real_fraction"] is None:
        raise ConfigError(
            f"{source}: {where}.real_fraction: regime {regime!r} needs "
            "real_fraction (a number in [0, 1])"
        )
    if regime not in NEEDS_REAL_FRACTION:
        settings["real_fraction"] = None  # irrelevant; keep it out of the artifacts' identity
    plot_gens = settings.get("plot_generations")
    if plot_gens is not None:
        bad = [g for g in plot_gens if g >= gens]
        if bad:
            raise ConfigError(
                f"{source}: {where}.plot_generations: {bad} not below generations ({gens})"
            )
    else:
        settings["plot_generations"] = default_plot_generations(gens)
    validated = RunSettings.from_dict(settings)
    # Real data: the corpus fixes the pool once prepared (check_prepared_pools).
    if "pool_size" in src:
        what = f"human.{validated.human}.pool_size"
        _check_pool(run_id, validated, src["pool_size"], what, source)
    return validated


def human_rows_needed(settings: RunSettings) -> int:
    """Human pool rows a run uses over all its generations: the first N (generation
    0), and for ``fresh`` real_fraction x N unused rows per later generation. (``mix``
    draws real_fraction x N <= N rows from anywhere in the pool: N rows suffice.)"""
    n = settings.samples_per_generation
    if settings.regime == "fresh" and settings.real_fraction is not None:
        return n + (settings.generations - 1) * real_row_count(n, settings.real_fraction)
    return n


def _check_pool(run_id: str, settings: RunSettings, pool_rows: int, what: str, source: str) -> None:
    needed = human_rows_needed(settings)
    if needed > pool_rows:
        raise ConfigError(
            f"{source}: runs.{run_id}: needs {needed} human rows but {what} is {pool_rows} "
            f"(regime {settings.regime!r}, samples_per_generation "
            f"{settings.samples_per_generation}, generations {settings.generations}); "
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
        human = settings.human
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


class _KnownFamilies:
    """The family names, asked one at a time: a built-in family is known without
    scanning every installed package for registered ones (what listing them all costs,
    at every Snakefile parse); the full list is for the error message."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and family_exists(name)

    def __iter__(self) -> Iterator[str]:
        return iter(known_families())


def load_params(path: str | Path = "params.yaml") -> Params:
    return validate(read_yaml(path), source=str(path))
