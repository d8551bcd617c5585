"""The ``ensemble`` step: results/<run>/ensemble.csv, K independent chains of the run's
setting, vectorised (``modelcollapse.ensemble``); header only when K == 1 or the
family has no vectorised form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from modelcollapse import io
from modelcollapse.ensemble import FRAME_COLUMNS, ensemble_frame, run_chains
from modelcollapse.families import get_family
from modelcollapse.families.base import Family
from modelcollapse.human import load_truth
from modelcollapse.paths import results_dir
from modelcollapse.settings import RunSettings
from modelcollapse.stamps import stamp_path, write_stamp

# The ensemble's random stream (modelcollapse.pipeline uses stream 1 per generation).
_ENSEMBLE_STREAM = 2


def simulate_ensemble(
    fam: Family, truth: Any, settings: RunSettings, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """``settings.chains`` independent chains of the run's setting, vectorised
    (:func:`modelcollapse.ensemble.run_chains`): ``{metric: (generations, chains)}``."""
    if fam.batched is None:
        raise ValueError(f"family {fam.name!r} has no batched operations (no ensemble)")
    return run_chains(
        fam.batched(truth, settings.options),
        regime=settings.regime,
        generations=settings.generations,
        samples_per_generation=settings.samples_per_generation,
        real_fraction=settings.real_fraction,
        chains=settings.chains,
        rng=rng,
    )


def run_ensemble(
    run: str, settings: RunSettings, root: str | Path = ".", stamp: dict[str, Any] | None = None
) -> pd.DataFrame:
    """Write results/<run>/ensemble.csv, then the step's stamp; return the frame."""
    fam = get_family(settings.family)
    if settings.chains > 1 and fam.batched is not None:
        truth = load_truth(fam, settings.human, root)
        rng = np.random.default_rng(
            np.random.SeedSequence(settings.seed, spawn_key=(_ENSEMBLE_STREAM,))
        )
        with threadpool_limits(1):
            metrics = simulate_ensemble(fam, truth, settings, rng)
        frame = ensemble_frame(metrics)
    else:
        frame = pd.DataFrame(columns=list(FRAME_COLUMNS))
    io.write_text(
        results_dir(run, root) / "ensemble.csv", frame.to_csv(index=False, float_format="%.10g")
    )
    if stamp is not None:
        write_stamp(stamp_path("ensemble", run, root), **stamp)
    return frame
