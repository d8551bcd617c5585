"""Regime composition over chains and the ensemble summary frame."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from modelcollapse.ensemble import (
    FRAME_COLUMNS,
    BatchedFamily,
    RegimeComposer,
    batched_categorical,
    ensemble_frame,
    equivalent_to_replace,
    run_chains,
    subsample_without_replacement,
)

HUMAN = -1.0


class Recorder:
    """A fake family whose rows are ``(origin, id)``: origin -1 is human, g is model g.

    Human ids count up from 0 and model ids start at 1e6 * (g + 1), so every row
    is unique and traceable to where it came from.
    """

    def __init__(self) -> None:
        self.training_sets: list[np.ndarray] = []
        self.samples: list[np.ndarray] = []
        self.next_human_id = 0

    def draw_truth(self, chains: int, n: int, rng: np.random.Generator) -> np.ndarray:
        ids = self.next_human_id + np.arange(chains * n, dtype=float).reshape(chains, n)
        self.next_human_id += chains * n
        return np.stack([np.full((chains, n), HUMAN), ids], axis=-1)

    def fit(self, rows: np.ndarray, rng: np.random.Generator) -> int:
        self.training_sets.append(rows.copy())
        return len(self.training_sets) - 1

    def sample(self, generation: int, n: int, rng: np.random.Generator) -> np.ndarray:
        chains = self.training_sets[-1].shape[0]
        ids = 1e6 * (generation + 1) + np.arange(chains * n, dtype=float).reshape(chains, n)
        rows = np.stack([np.full((chains, n), float(generation)), ids], axis=-1)
        self.samples.append(rows)
        return rows

    def measure(self, generation: int, samples: np.ndarray) -> dict[str, np.ndarray]:
        return {"rows": np.full(samples.shape[0], float(self.training_sets[-1].shape[1]))}

    def family(self) -> BatchedFamily:
        return BatchedFamily(self.draw_truth, self.fit, self.sample, self.measure)


def record(regime: str, *, chains=3, n=10, generations=4, real_fraction=None, seed=0):
    rec = Recorder()
    out = run_chains(
        rec.family(),
        regime=regime,
        generations=generations,
        samples_per_generation=n,
        real_fraction=real_fraction,
        chains=chains,
        rng=np.random.default_rng(seed),
    )
    return rec, out


@pytest.mark.parametrize(
    "regime", ["replace", "mix", "accumulate", "accumulate_subsample", "fresh"]
)
def test_generation_zero_is_n_human_rows(regime):
    rec, _ = record(regime, real_fraction=0.3)
    first = rec.training_sets[0]
    assert first.shape == (3, 10, 2)
    assert np.all(first[..., 0] == HUMAN)
    assert len(np.unique(first[..., 1])) == 30  # distinct rows for every chain


def test_replace_trains_on_previous_samples():
    rec, out = record("replace")
    for g in range(1, 4):
        np.testing.assert_array_equal(rec.training_sets[g], rec.samples[g - 1])
    np.testing.assert_array_equal(out["rows"], np.full((4, 3), 10.0))


@pytest.mark.parametrize("regime", ["mix", "fresh"])
def test_mix_and_fresh_take_k_new_human_rows_and_first_n_minus_k_samples(regime):
    rec, _ = record(regime, real_fraction=0.34, n=10)  # k = round(3.4) = 3
    seen_human = set(rec.training_sets[0][..., 1].ravel())
    for g in range(1, 4):
        rows = rec.training_sets[g]
        assert rows.shape == (3, 10, 2)
        assert np.all(rows[:, :3, 0] == HUMAN)
        np.testing.assert_array_equal(rows[:, 3:], rec.samples[g - 1][:, :7])
        new_ids = set(rows[:, :3, 1].ravel())
        assert len(new_ids) == 9 and not new_ids & seen_human  # drawn afresh
        seen_human |= new_ids


def test_mix_rounds_half_up_and_handles_the_extremes():
    rec, _ = record("mix", real_fraction=0.25, n=10)  # 2.5 -> 3
    assert np.sum(rec.training_sets[1][0, :, 0] == HUMAN) == 3
    rec, _ = record("mix", real_fraction=1.0, n=10)
    assert np.all(rec.training_sets[2][..., 0] == HUMAN)
    rec, _ = record("fresh", real_fraction=0.0, n=10)
    np.testing.assert_array_equal(rec.training_sets[2], rec.samples[1])


def test_accumulate_keeps_every_row():
    rec, out = record("accumulate", generations=5)
    for g in range(5):
        rows = rec.training_sets[g]
        assert rows.shape == (3, (g + 1) * 10, 2)
        np.testing.assert_array_equal(rows[:, :10], rec.training_sets[0])
        for i in range(g):
            np.testing.assert_array_equal(rows[:, (i + 1) * 10 : (i + 2) * 10], rec.samples[i])
    np.testing.assert_array_equal(out["rows"][:, 0], [10, 20, 30, 40, 50])


def test_accumulate_subsample_draws_n_distinct_pool_rows_per_chain():
    rec, _ = record("accumulate_subsample", chains=4, generations=5)
    for g in range(1, 5):
        rows = rec.training_sets[g]
        assert rows.shape == (4, 10, 2)
        pool = np.concatenate([rec.training_sets[0]] + rec.samples[:g], axis=1)
        for k in range(4):
            ids = rows[k, :, 1]
            assert len(np.unique(ids)) == 10  # without replacement
            assert set(ids) <= set(pool[k, :, 1])
    # Chains draw independent indices: the positions picked differ across chains.
    picked = [set(rec.training_sets[4][k, :, 1] % 1e6) for k in range(4)]
    assert len({frozenset(p) for p in picked}) > 1


def test_subsample_is_uniform_over_the_pool():
    rng = np.random.default_rng(1)
    pool = np.broadcast_to(np.arange(40.0), (5000, 40)).copy()
    picked = subsample_without_replacement(pool, 10, rng)
    assert picked.shape == (5000, 10)
    assert all(len(set(row)) == 10 for row in picked[:100])
    # Each pool row is picked with probability 10/40; 5000 chains -> 1250 +- 31 each.
    counts = np.bincount(picked.astype(int).ravel(), minlength=40)
    assert np.all(np.abs(counts - 1250) < 4 * np.sqrt(5000 * 0.25 * 0.75))
    whole = subsample_without_replacement(pool[:3], 40, rng)
    np.testing.assert_array_equal(np.sort(whole, axis=1), pool[:3])


def test_composer_rejects_bad_settings():
    draw = Recorder().draw_truth
    rng = np.random.default_rng(0)
    common = dict(samples_per_generation=5, chains=2, generations=3, draw_truth=draw, rng=rng)
    with pytest.raises(ValueError, match="regime"):
        RegimeComposer("bogus", real_fraction=None, **common)
    with pytest.raises(ValueError, match="real_fraction"):
        RegimeComposer("mix", real_fraction=None, **common)
    with pytest.raises(ValueError, match="real_fraction"):
        RegimeComposer("fresh", real_fraction=1.5, **common)
    composer = RegimeComposer("replace", real_fraction=None, **common)
    with pytest.raises(ValueError, match="expected generation 0"):
        composer.training_set(1, None)


def test_equivalent_to_replace():
    assert equivalent_to_replace("replace", 100, None)
    assert equivalent_to_replace("mix", 100, 0.004)  # rounds to 0 human rows
    assert not equivalent_to_replace("mix", 100, 0.005)  # rounds half up to 1
    assert not equivalent_to_replace("accumulate", 100, 0.0)


def test_batched_categorical_frequencies_and_zero_probabilities():
    probs = np.array([[0.0, 0.5, 0.0, 0.5], [0.7, 0.0, 0.3, 0.0], [0.0, 0.0, 0.0, 1.0]])
    draws = batched_categorical(probs, 20000, np.random.default_rng(2))
    assert draws.shape == (3, 20000)
    for k in range(3):
        freq = np.bincount(draws[k], minlength=4) / 20000
        assert np.all(freq[probs[k] == 0] == 0)
        np.testing.assert_allclose(freq, probs[k], atol=4 * np.sqrt(0.25 / 20000))


def test_ensemble_frame_on_a_hand_example():
    metrics = {
        "b": np.array([[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]]),
        "a": np.array([[4.0, 4.0, 4.0], [1.0, 2.0, 3.0]]),
    }
    frame = ensemble_frame(metrics)
    assert list(frame.columns) == list(FRAME_COLUMNS)
    assert list(frame["metric"]) == ["a", "a", "b", "b"]
    assert list(frame["generation"]) == [0, 1, 0, 1]
    expected = pd.DataFrame(
        {
            "generation": [0, 1, 0, 1],
            "metric": ["a", "a", "b", "b"],
            "mean": [4.0, 2.0, 3.0, 1.0],
            "median": [4.0, 2.0, 2.0, 0.0],
            # ddof=1: b gen 0: deviations -2, -1, 3 -> (4+1+9)/2 = 7
            "std": [0.0, 1.0, np.sqrt(7.0), np.sqrt(3.0)],
        }
    )
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
    assert frame["generation"].dtype == np.int64


def test_ensemble_frame_single_chain_and_errors():
    frame = ensemble_frame({"m": np.array([[1.0], [2.0]])})
    assert frame["std"].isna().all() and list(frame["mean"]) == [1.0, 2.0]
    assert list(ensemble_frame({}).columns) == list(FRAME_COLUMNS)
    with pytest.raises(ValueError, match="m:"):
        ensemble_frame({"m": np.zeros(3)})


def test_subsample_from_a_large_pool_uses_distinct_uniform_rows():
    rng = np.random.default_rng(3)
    pool = np.broadcast_to(np.arange(400.0)[:, None], (3000, 400, 1)).copy()  # pool > 4n
    picked = subsample_without_replacement(pool, 20, rng)[..., 0]
    assert picked.shape == (3000, 20)
    assert all(len(set(row)) == 20 for row in picked)
    # 3000 * 20 / 400 = 150 picks expected per pool row, binomial sd ~ 12
    counts = np.bincount(picked.astype(int).ravel(), minlength=400)
    assert abs(counts.mean() - 150) < 1e-9 and counts.std() < 1.3 * np.sqrt(150 * 0.95)
    assert np.all(np.abs(counts - 150) < 5 * np.sqrt(150))


@pytest.mark.parametrize("name", ["gaussian", "linear_regression", "categorical"])
def test_incremental_accumulate_matches_refitting_the_pool(name):
    from modelcollapse.config import family_options
    from modelcollapse.families import get_family

    specs = {
        "gaussian": {"dim": 2, "mean": [50.0, -3.0], "cov": [[1.0, 0.3], [0.3, 0.5]]},
        "linear_regression": {"dim": 3, "noise_std": 0.7},
        "categorical": {"num_symbols": 6, "zipf_exponent": 1.0},
    }
    family = get_family(name)
    truth = family.truth_from_spec(specs[name])
    fast = family.batched(truth, family_options(name))
    slow = dataclasses.replace(fast, summarize=None, fit_summary=None)
    settings = dict(regime="accumulate", generations=6, samples_per_generation=40, chains=5)
    a = run_chains(fast, real_fraction=None, rng=np.random.default_rng(0), **settings)
    b = run_chains(slow, real_fraction=None, rng=np.random.default_rng(0), **settings)
    assert a.keys() == b.keys()
    for metric in a:
        np.testing.assert_allclose(a[metric], b[metric], rtol=1e-8, atol=1e-12)
