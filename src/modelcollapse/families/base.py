"""The contract every family fulfils: one :class:`Family` object per family.

A family module defines ``FAMILY = Family(...)``; the registry
(:mod:`modelcollapse.families`) imports that module only when a run uses it, and
packages outside this repository add families through the entry-point group
``modelcollapse.families``. docs/architecture.md ("The family object") walks through
every member; the README's "Adding a family" section shows a family added from
outside the package.

The model is an :class:`Estimator` with the scikit-learn contract: ``__init__`` stores
keyword parameters only; ``fit(data) -> self``; learned attributes end in ``_``;
``random_state``; ``sample(n, rng)``; ``score(data)`` (per-row log-likelihood);
``save(path)`` / ``Model.load(path)`` to safetensors + JSON (never a pickle).

Data are Arrow tables (:mod:`modelcollapse.tables`, which turns columns into NumPy
arrays and arrays into tables) whose columns are the family's data columns only
(``x0..x{d-1}``, ``y``, ``symbol``, ``tokens``, ``pixels``); provenance columns are
added by the pipeline. Arrow, not pandas: a generation job of a statistical family
computes in milliseconds, and importing pandas alone took half a second.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import numpy as np

from modelcollapse.io import ArtifactError, load_checkpoint, save_checkpoint

if TYPE_CHECKING:
    import pyarrow as pa

    from modelcollapse.ensemble import BatchedFamily
    from modelcollapse.settings import RunSettings


class Estimator:
    """Shared plumbing: parameters, fitted state, safetensors checkpoints.

    Subclasses list their constructor parameters in ``_param_names`` and their
    learned array attributes in ``_state_names`` (each ending in ``_``).
    """

    family: ClassVar[str]
    _param_names: ClassVar[tuple[str, ...]] = ()
    _state_names: ClassVar[tuple[str, ...]] = ()

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def is_fitted(self) -> bool:
        return all(hasattr(self, name) for name in self._state_names)

    def _check_fitted(self) -> None:
        if not self.is_fitted():
            raise RuntimeError(f"{type(self).__name__} is not fitted")

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write ``path`` (tensors) and ``path.with_suffix('.json')`` (parameters)."""
        self._check_fitted()
        tensors = {name: np.asarray(getattr(self, name)) for name in self._state_names}
        meta = {"family": self.family, "class": type(self).__name__, "params": self.get_params()}
        if extra:
            meta["extra"] = extra
        save_checkpoint(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        tensors, meta = load_checkpoint(path)
        if meta.get("family") != cls.family:
            raise ArtifactError(
                f"checkpoint {path} is of family {meta.get('family')!r}, expected {cls.family!r}"
            )
        model = cls(**meta.get("params", {}))
        missing = [name for name in cls._state_names if name not in tensors]
        if missing:
            raise ArtifactError(f"checkpoint {path} lacks tensors {missing}")
        for name in cls._state_names:
            setattr(model, name, tensors[name])
        return model

    # To be provided by each family.
    def fit(self, data: pa.Table) -> Self:  # pragma: no cover - interface
        raise NotImplementedError

    def sample(self, n: int, rng: np.random.Generator) -> pa.Table:  # pragma: no cover
        raise NotImplementedError

    def score(self, data: pa.Table) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


# --- the family object ----------------------------------------------------------------

# Where a family's snapshot figures come from: a generic drawer of
# modelcollapse.snapshots by name ("features": histograms of 1-D data, densities of 2-D
# data; "probabilities": a categorical's probabilities by true rank), the family's own
# function ``(run, settings, truth, root, *, title) -> {file name: Figure}``, or None.
SnapshotKind = Literal["features", "probabilities"]
SnapshotDrawer = Callable[..., dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class Family:
    """Everything the workflow knows of a family; each module defines one, ``FAMILY``.

    Required of every family:

    ``name``: the value of ``family:`` in params.yaml.
    ``model``: the :class:`Estimator` subclass (``model.load`` reads checkpoints).
    ``schema``: the family's schema file: ``truth`` (a statistical family's true
    distribution, ``human.<id>.truth``) or ``data`` (real data, ``human.<id>.data``),
    and ``options`` (``runs.<id>.options``) with every option's default. Defaults live
    there only: validation fills them in, so ``build_model`` gets complete options.
    ``build_model(options, truth, random_state[, init_seed=])``: an unfitted model for
    a run; ``truth`` supplies what the model must know of the world.
    ``evaluate(model, truth, test, samples[, reference=])``: a generation's metrics,
    ``{name: float}`` (names are part of the contract: the README lists them).
    ``key_metrics``: the metrics that summarise collapse (report tables and panels).

    Exactly one way to obtain human data:

    ``truth_from_spec(spec) -> Model``: a statistical family's true distribution as a
    fitted model; human rows are ``truth.sample(n, rng)``. Or, on real data,
    ``load_human(spec, out_dir, rng) -> (pool, test, origin_path)`` (writes what the
    family needs beside the rows, and a description whose md5 every human row carries)
    with ``load_truth(human_dir)`` (what models must know of the source: a tokenizer).

    Optional:

    ``metric_labels``: ``{metric: axis label}``, what a figure calls a metric (its
    meaning and unit; the identifier where none is given). ``median_metrics``: metrics
    whose collapse is a statement about the median, not the mean (the Gaussian
    variance: a martingale whose chains almost all collapse); figures draw their
    ensemble median as prominently as the mean. ``log_metrics``: metrics always drawn
    on a log axis (others go log when their values span two decades).
    ``memory_footprint(truth_spec) -> (values per row, floats per model)`` where rows
    are not ``dim`` values and models not ``dim x dim`` floats (:mod:`modelcollapse.budget`).
    ``batched(truth, options) -> BatchedFamily``:
    the family's vectorised operations, from which the ensemble of ``chains`` runs
    (:func:`modelcollapse.ensemble.run_chains`). ``theory(truth, settings) -> {metric:
    (generations,) array}``: closed-form expectations where known ({} otherwise).
    ``same_init``: every generation starts from the run seed's initialisation
    (``build_model(..., init_seed=seed)``). ``needs_prompts``: ``sample(n, rng,
    prompts=)`` gets the first ``n`` human pool rows. ``annotate_samples(samples,
    reference)``: per-row columns computed with the generation-0 model, which
    ``evaluate`` then gets as ``reference=``. ``snapshots``: see ``SnapshotKind``.
    """

    name: str
    model: type[Estimator]
    schema: Path
    build_model: Callable[..., Estimator]
    evaluate: Callable[..., dict[str, float]]
    key_metrics: tuple[str, ...]
    log_metrics: tuple[str, ...] = ()
    metric_labels: Mapping[str, str] | None = None
    median_metrics: tuple[str, ...] = ()
    truth_from_spec: Callable[[Mapping[str, Any]], Estimator] | None = None
    memory_footprint: Callable[[Mapping[str, Any]], tuple[int, int]] | None = None
    batched: Callable[[Any, Mapping[str, Any]], BatchedFamily] | None = None
    theory: Callable[[Any, RunSettings], dict[str, np.ndarray]] | None = None
    load_human: Callable[..., tuple[pa.Table, pa.Table, Path]] | None = None
    load_truth: Callable[[Path], Any] | None = None
    same_init: bool = False
    needs_prompts: bool = False
    annotate_samples: Callable[[pa.Table, Any], pa.Table] | None = None
    snapshots: SnapshotKind | SnapshotDrawer | None = "features"

    def __post_init__(self) -> None:
        where = f"family {self.name!r}"
        if not self.name.isidentifier():
            raise TypeError(f"{where}: the name must be a Python identifier")
        if getattr(self.model, "family", None) != self.name:
            raise TypeError(f"{where}: {self.model.__name__}.family must be {self.name!r}")
        on_truth = self.truth_from_spec is not None
        on_data = self.load_human is not None and self.load_truth is not None
        if on_truth == on_data:
            raise TypeError(
                f"{where}: define truth_from_spec (a known truth) or load_human and "
                "load_truth (real data), not both, not neither"
            )
        if not self.key_metrics:
            raise TypeError(f"{where}: key_metrics must name at least one metric")

    @property
    def on_real_data(self) -> bool:
        """Human data come from a corpus or data set (``load_human``), not a known truth."""
        return self.load_human is not None

    @property
    def needs_reference(self) -> bool:
        return self.annotate_samples is not None

    def schema_document(self) -> dict[str, Any]:
        """The parsed schema file (``truth`` or ``data``, and ``options``)."""
        return _read_schema(self.schema)

    def option_defaults(self) -> dict[str, Any]:
        """``{option: default}`` from the schema file, the one place defaults live."""
        return schema_defaults(self.schema_document()["options"])

    def load_model(self, path: str | Path) -> Estimator:
        return self.model.load(path)


def schema_defaults(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``{key: default}`` of an object schema's properties (params.schema.yaml's and the
    family schema files' ``default:`` entries, the one place defaults live)."""
    return {
        k: copy.deepcopy(v["default"])
        for k, v in schema.get("properties", {}).items()
        if "default" in v
    }


@cache
def _read_schema(path: Path) -> dict[str, Any]:
    import yaml  # only validation reads schemas; generation jobs never do

    from modelcollapse.checks import safe_load_yaml

    try:
        document = safe_load_yaml(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TypeError(f"family schema {path}: {exc}") from exc
    if not isinstance(document, dict) or "options" not in document:
        raise TypeError(f"family schema {path}: expected a mapping with 'options'")
    if ("truth" in document) == ("data" in document):
        raise TypeError(f"family schema {path}: give exactly one of 'truth' and 'data'")
    return document


# The schema files of the families in this package (schemas/families/<name>.yaml).
SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas"


def builtin_schema(name: str) -> Path:
    return SCHEMA_DIR / "families" / f"{name}.yaml"
