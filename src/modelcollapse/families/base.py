"""The contract every family module fulfils.

A family is one module in ``modelcollapse.families`` that defines:

``NAME: str``
    The value of ``family:`` in params.yaml.
``Model``
    An estimator with the scikit-learn contract (a subclass of :class:`Estimator`):
    ``__init__`` stores keyword parameters only; ``fit(data) -> self``; learned
    attributes end in ``_``; ``random_state``; ``sample(n, rng)``; ``score(data)``
    (per-row log-likelihood); ``save(path)`` / ``Model.load(path)`` to
    safetensors + JSON.
``truth_from_spec(spec: dict) -> Model``
    The true distribution of a human source (``human.<id>.truth`` in params.yaml)
    as a fitted ``Model``; human data are ``truth.sample(n, rng)``.
``build_model(options: dict, truth: Model, random_state: int) -> Model``
    An unfitted model for a run: ``options`` are the run's family options
    (``runs.<id>.options``); ``truth`` supplies what the model must know of the
    world (the dimension, the label noise of a regression).
``evaluate(model, truth, test, samples) -> dict[str, float]``
    The per-generation metrics (names are part of the contract: the README lists them).
``simulate_ensemble(truth, *, options, regime, generations, samples_per_generation,
real_fraction, chains, rng) -> dict[str, np.ndarray]``
    ``chains`` independent chains of the same setting, vectorised over chains;
    each value has shape ``(generations, chains)``.
``theory(truth, *, options, regime, generations, samples_per_generation,
real_fraction) -> dict[str, np.ndarray]``
    Closed-form expectations per generation (shape ``(generations,)``) for the
    metrics that have one in this setting; an empty dict where none is known.

Families on real data (no known truth) define instead of ``truth_from_spec``:
``load_human(spec, out_dir, rng) -> (pool, test, origin_path)``
    Read the source named by ``human.<id>.data``; write into ``out_dir`` what the
    family needs beside the rows (a tokenizer, ``source.json`` describing the
    corpus and its md5s: the ``origin_path`` whose md5 every human row carries).
``load_truth(human_dir) -> object``
    What models need to know of the source (a tokenizer, sizes); passed as
    ``truth`` to ``build_model`` and ``evaluate``.
and may set these module flags (see ``pipeline.run_generation``):
``SAME_INIT`` (``build_model(..., init_seed=)``: every generation starts from the
same initialisation), ``NEEDS_PROMPTS`` (``sample(n, rng, prompts=)`` gets the
first n human pool rows), ``NEEDS_REFERENCE`` (``annotate_samples(samples,
reference)`` adds per-row columns and ``evaluate(..., reference=)`` gets the
generation-0 model), and ``snapshot_figures(run, settings, truth, root, *, title)
-> {file name: Figure}`` for their own snapshot figures. A statistical family whose
rows are not ``dim`` values, or whose model is not about ``dim x dim`` floats, defines
``memory_footprint(truth_spec) -> (values per row, floats per model)``, from which
validation estimates a job's memory before it runs (``modelcollapse.budget``).
Any family may list ``LOG_METRICS``: metrics always drawn on a log axis
(perplexities); others go log only when their values span two decades.

Data are pandas DataFrames whose columns are the family's data columns only
(``x0..x{d-1}``, ``y``, ``symbol``); provenance columns are added by the pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from modelcollapse.io import ArtifactError, load_checkpoint, save_checkpoint


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
    def fit(self, data: pd.DataFrame) -> Self:  # pragma: no cover - interface
        raise NotImplementedError

    def sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:  # pragma: no cover
        raise NotImplementedError

    def score(self, data: pd.DataFrame) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError
