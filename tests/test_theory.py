"""Ensembles against closed-form theory.

Each check compares an ensemble mean with the theory at several generations and
accepts ``|mean - theory| < 4 * std / sqrt(K)`` (about 1 in 16 000 per check to
fail by chance for a normal mean; seeds are fixed, so the tests are
deterministic, and a wrong formula misses by many standard errors).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.stats

from modelcollapse import theory
from modelcollapse.config import make_run_settings
from modelcollapse.ensemble import run_chains
from modelcollapse.ensemble_step import simulate_ensemble
from modelcollapse.families import categorical, gaussian, gmm, linear_regression


def settings(family, *, generations, n, regime="replace", real_fraction=None, chains=1, **options):
    return make_run_settings(
        family.NAME,
        regime=regime,
        generations=generations,
        samples_per_generation=n,
        real_fraction=real_fraction,
        chains=chains,
        options=options,
    )


def ensemble(family, truth, *, chains, generations, n, seed, regime="replace", **options):
    run = settings(family, generations=generations, n=n, regime=regime, chains=chains, **options)
    return simulate_ensemble(family.FAMILY, truth, run, np.random.default_rng(seed))


def predicted(family, truth, *, generations, n, regime="replace", **options):
    run = settings(family, generations=generations, n=n, regime=regime, **options)
    return family.FAMILY.theory(truth, run)


def assert_within_standard_errors(values, expected, generations, z=4.0):
    for g in generations:
        sample = values[g]
        se = sample.std(ddof=1) / math.sqrt(len(sample))
        assert abs(sample.mean() - expected[g]) < z * se, (g, sample.mean(), expected[g], se)


def test_chi_mean_factor_is_the_mean_of_the_sample_std():
    for m in (2, 5, 50, 5000):
        expected = scipy.stats.chi(m - 1).mean() / math.sqrt(m - 1)
        assert theory.chi_mean_factor(m) == pytest.approx(expected, rel=1e-10)


def test_gaussian_unbiased_1d_mean_variance_w2():
    truth = gaussian.truth_from_spec({"dim": 1, "mean": 3.0, "std": 2.0})
    out = ensemble(gaussian, truth, chains=4000, generations=12, n=50, seed=1)
    expected = predicted(gaussian, truth, generations=12, n=50)
    assert set(expected) == {"mean_sq_error", "var_trace", "var_trace/median", "w2_sq"}
    np.testing.assert_allclose(expected["mean_sq_error"], 4.0 * np.arange(1, 13) / 50)
    np.testing.assert_allclose(expected["var_trace"], 4.0)
    for metric in ("mean_sq_error", "var_trace", "w2_sq"):
        assert_within_standard_errors(out[metric], expected[metric], [0, 5, 11])
    # The variance is a martingale but w2 grows: (g+1) s^2/M + 2 s^2 (1 - c^(g+1)).
    assert expected["w2_sq"][11] > expected["mean_sq_error"][11] * 1.1


def test_gaussian_median_variance_decays_like_the_log_chi2_walk():
    """ln sigma_g^2 is a sum of g+1 iid ln(chi2_{M-1}/(M-1)) terms, so its median is
    its mean up to a skewness term ~ skew * sd / 6 per step-free constant
    (|skew| ~ 1/sqrt((M-1)/2) = 0.2, sd 0.2 here: < 0.01), far below the sampling
    error of a median, 1.2533 * sd_g / sqrt(K); we allow 4 of those."""
    m, chains, generations = 50, 2000, 200
    truth = gaussian.truth_from_spec({"dim": 1, "std": 1.5})
    out = ensemble(gaussian, truth, chains=chains, generations=generations, n=m, seed=2)
    expected = predicted(gaussian, truth, generations=generations, n=m)["var_trace/median"]
    spread = theory.log_var_spread_1d(m, generations)
    for g in (0, 50, 199):
        observed = np.log(np.median(out["var_trace"][g]))
        tolerance = 4 * 1.2533 * spread[g] / math.sqrt(chains) + 0.01
        assert abs(observed - np.log(expected[g])) < tolerance, (g, observed, expected[g])
    # Collapse: the median variance has lost most of its mass while the mean has not.
    assert expected[199] < 0.05 * 2.25


def test_gaussian_mle_variance_and_mean_error():
    truth = gaussian.truth_from_spec({"dim": 1, "std": 1.0})
    out = ensemble(gaussian, truth, chains=4000, generations=10, n=20, seed=3, estimator="mle")
    expected = predicted(gaussian, truth, generations=10, n=20, estimator="mle")
    np.testing.assert_allclose(expected["var_trace"], (19 / 20) ** np.arange(1, 11))
    np.testing.assert_allclose(expected["mean_sq_error"], 1 - (19 / 20) ** np.arange(1, 11))
    for metric in ("var_trace", "mean_sq_error", "w2_sq"):
        assert_within_standard_errors(out[metric], expected[metric], [0, 4, 9])


def test_gaussian_sample_scale_shrinks_variance_geometrically():
    truth = gaussian.truth_from_spec({"dim": 1, "std": 1.0})
    out = ensemble(gaussian, truth, chains=4000, generations=10, n=50, seed=4, sample_scale=0.8)
    expected = predicted(gaussian, truth, generations=10, n=50, sample_scale=0.8)
    np.testing.assert_allclose(expected["var_trace"], 0.8 ** np.arange(10))
    for metric in ("var_trace", "mean_sq_error", "w2_sq"):
        assert_within_standard_errors(out[metric], expected[metric], [0, 4, 9])


def test_gaussian_multivariate_trace_forms():
    cov = [[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.5]]
    truth = gaussian.truth_from_spec({"dim": 3, "mean": [1.0, 0.0, -1.0], "cov": cov})
    out = ensemble(gaussian, truth, chains=3000, generations=8, n=30, seed=5, estimator="mle")
    expected = predicted(gaussian, truth, generations=8, n=30, estimator="mle")
    assert set(expected) == {"mean_sq_error", "var_trace"}  # no clean d-dim w2 / median
    np.testing.assert_allclose(expected["var_trace"], 3.5 * (29 / 30) ** np.arange(1, 9))
    for metric in ("var_trace", "mean_sq_error"):
        assert_within_standard_errors(out[metric], expected[metric], [0, 3, 7])


@pytest.mark.parametrize(
    ("regime", "spec", "options", "seed"),
    [
        ("mix", {"dim": 1, "mean": 2.0, "std": 1.0}, {}, 11),
        ("fresh", {"dim": 1, "std": 1.5}, {}, 12),
        ("mix", {"dim": 2, "cov": [[1.0, 0.3], [0.3, 0.5]]}, {"estimator": "mle"}, 13),
        ("mix", {"dim": 1, "std": 1.0}, {"sample_scale": 0.9}, 14),
    ],
)
def test_gaussian_mix_and_fresh_variance_settles_above_the_truth(regime, spec, options, seed):
    """Two human rows in twenty (real_fraction 0.1): the chains' mean variance and mean
    error follow theory.gaussian_mix's recursion, and the unbiased chain's variance
    settles at 1.32 times the truth's (the between-group spread of model and human rows)."""
    truth = gaussian.truth_from_spec(spec)
    run = settings(
        gaussian, generations=40, n=20, regime=regime, real_fraction=0.1, chains=3000, **options
    )
    out = simulate_ensemble(gaussian.FAMILY, truth, run, np.random.default_rng(seed))
    expected = gaussian.FAMILY.theory(truth, dataclasses.replace(run, chains=1))
    assert set(expected) == {"var_trace", "mean_sq_error"}
    for metric in ("var_trace", "mean_sq_error"):
        assert_within_standard_errors(out[metric], expected[metric], [0, 1, 5, 20, 39])
    if not options:
        long = theory.gaussian_mix(truth.covariance_, samples=20, human_rows=2, generations=500)
        stationary = long["var_trace"][-1] / float(np.trace(truth.covariance_))
        # S = (1 + a r) / (1 - a (1 - r)), a = (1 - r) / ((M - 1) r (2 - r)), r = 2/20
        r, m = 0.1, 20
        a = (1 - r) / ((m - 1) * r * (2 - r))
        assert stationary == pytest.approx((1 + a * r) / (1 - a * (1 - r)), rel=2e-3)
        assert stationary == pytest.approx(1.3214, abs=1e-3)


def test_gaussian_mix_without_human_rows_is_the_replace_chain():
    cov = np.diag([2.0, 0.5])
    for estimator, scale in (("unbiased", 1.0), ("mle", 0.8)):
        kw = {"samples": 30, "generations": 12, "estimator": estimator, "sample_scale": scale}
        replace = theory.gaussian_replace(cov, **kw)
        mix = theory.gaussian_mix(cov, human_rows=0, **kw)
        for metric in ("var_trace", "mean_sq_error"):
            np.testing.assert_allclose(mix[metric], replace[metric], rtol=1e-12)


def test_linear_regression_replace_grows_linearly():
    truth = linear_regression.truth_from_spec({"dim": 5, "noise_std": 1.0})
    out = ensemble(linear_regression, truth, chains=4000, generations=10, n=30, seed=6)
    expected = predicted(linear_regression, truth, generations=10, n=30)["excess_risk"]
    np.testing.assert_allclose(expected, np.arange(1, 11) * 5 / 24)
    assert_within_standard_errors(out["excess_risk"], expected, [0, 4, 9])


def test_linear_regression_accumulate_is_exact_and_bounded():
    d, t, generations = 10, 30, 8
    truth = linear_regression.truth_from_spec({"dim": d, "noise_std": 1.0})
    out = ensemble(
        linear_regression,
        truth,
        chains=4000,
        generations=generations,
        n=t,
        seed=7,
        regime="accumulate",
    )["excess_risk"]
    expected = predicted(
        linear_regression, truth, generations=generations, n=t, regime="accumulate"
    )
    assert_within_standard_errors(out, expected["excess_risk"], [0, 1, 3, 7])
    bound = expected["excess_risk/bound"]
    np.testing.assert_allclose(bound, math.pi**2 / 6 * d / (t - d - 1))
    gerstgrasser = theory.linreg_accumulate_gerstgrasser(1.0, d, t, generations)
    se = out.std(axis=1, ddof=1) / math.sqrt(out.shape[1])
    assert np.all(out.mean(1) < bound)
    # At d/T = 1/3 the sum-of-1/i^2 form over-predicts by >8 standard errors.
    assert out.mean(1)[7] < gerstgrasser[7] - 8 * se[7]
    assert np.all(expected["excess_risk"] <= gerstgrasser + 1e-15)
    replace = theory.linreg_replace_excess_risk(1.0, d, t, generations)
    assert expected["excess_risk"][7] < replace[7] / 5


def test_categorical_gini_decays_geometrically():
    truth = categorical.truth_from_spec({"num_symbols": 10, "zipf_exponent": 1.0})
    out = ensemble(categorical, truth, chains=4000, generations=40, n=50, seed=8)
    expected = predicted(categorical, truth, generations=40, n=50)["gini_impurity"]
    base = 1 - (truth.probs_**2).sum()
    np.testing.assert_allclose(expected, base * 0.98 ** np.arange(1, 41))
    assert_within_standard_errors(out["gini_impurity"], expected, [0, 9, 39])


def test_categorical_chains_fix_on_symbol_k_with_probability_p_k():
    truth = categorical.truth_from_spec({"num_symbols": 4, "zipf_exponent": 1.0})
    chains = 4000
    family = dataclasses.replace(
        categorical.batched(truth, {}),
        measure=lambda probs, samples: {"winner": probs.argmax(-1), "top": probs.max(-1)},
    )
    out = run_chains(
        family,
        regime="replace",
        generations=400,
        samples_per_generation=20,
        real_fraction=None,
        chains=chains,
        rng=np.random.default_rng(9),
    )
    assert np.mean(out["top"][-1] == 1.0) > 0.999  # (1 - 1/20)^400 ~ 1e-9 heterozygosity left
    shares = np.bincount(out["winner"][-1].astype(int), minlength=4) / chains
    p = categorical.fixation_probabilities(truth)
    np.testing.assert_allclose(p, truth.probs_)
    assert np.all(np.abs(shares - p) < 4 * np.sqrt(p * (1 - p) / chains)), (shares, p)


def test_theory_is_empty_without_a_closed_form():
    truth = gaussian.truth_from_spec({"dim": 1, "std": 1.0})
    given = dict(generations=3, n=10)

    def theory(family, truth, **run):
        return family.FAMILY.theory(truth, settings(family, **given, **run))

    assert theory(gaussian, truth, regime="accumulate") == {}
    mixed = theory(gaussian, truth, regime="mix", real_fraction=0.5)
    assert set(mixed) == {"var_trace", "mean_sq_error"}  # expectations only (gaussian_mix)
    same = theory(gaussian, truth, regime="fresh", real_fraction=0.0)
    assert same.keys() == theory(gaussian, truth).keys()
    assert gmm.FAMILY.theory is None  # no closed form is known for EM-fitted mixtures
    cat = categorical.truth_from_spec({"num_symbols": 3, "zipf_exponent": 1.0})
    assert theory(categorical, cat, regime="accumulate") == {}
