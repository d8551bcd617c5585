"""Family contract: estimator plumbing, determinism, metrics against independent oracles."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest
import scipy.linalg
import scipy.stats
from sklearn.mixture import GaussianMixture

from modelcollapse import tables
from modelcollapse.config import ConfigError, family_options, make_run_settings
from modelcollapse.ensemble_step import simulate_ensemble
from modelcollapse.families import categorical, gaussian, get_family, gmm, linear_regression
from modelcollapse.io import ArtifactError

SPECS = {
    "gaussian": {"dim": 2, "mean": [1.0, -2.0], "cov": [[1.0, 0.4], [0.4, 2.0]]},
    "gmm": {
        "weights": [0.3, 0.7],
        "means": [[-2.0, 0.0], [2.0, 1.0]],
        "covariances": [[[1.0, 0.3], [0.3, 0.5]], [[0.6, 0.0], [0.0, 1.2]]],
    },
    "categorical": {"num_symbols": 12, "zipf_exponent": 1.1},
    "linear_regression": {"dim": 3, "noise_std": 0.5},
}
METRICS = {
    "gaussian": {"mean_sq_error", "var_trace", "w2_sq", "tail_mass", "test_nll"},
    "gmm": {"test_nll", "l2_density", "weight_0", "spread_0", "weight_1", "spread_1"},
    "categorical": {"gini_impurity", "support_size", "entropy", "tv_distance"},
    "linear_regression": {"excess_risk"},
}
FAMILIES = sorted(SPECS)


def fitted(name: str, seed: int = 0, n: int = 400):
    family = get_family(name)
    truth = family.truth_from_spec(SPECS[name])
    rng = np.random.default_rng(seed)
    train, test = truth.sample(n, rng), truth.sample(200, rng)
    return family, truth, build(name, truth, 7).fit(train), train, test


def build(name: str, truth, random_state: int, **options):
    """The family's model with the options of a validated run (schema defaults filled)."""
    return get_family(name).build_model(family_options(name, options), truth, random_state)


def ensemble(name, truth, rng, **settings):
    return simulate_ensemble(get_family(name), truth, make_run_settings(name, **settings), rng)


def test_registry_finds_the_four_families():
    for name in FAMILIES:
        assert get_family(name).name == name


@pytest.mark.parametrize("name", FAMILIES)
def test_save_load_round_trip(name, tmp_path):
    family, truth, model, _, test = fitted(name)
    path = tmp_path / "model.safetensors"
    model.save(path)
    loaded = family.model.load(path)
    assert loaded.get_params() == model.get_params()
    for attr in model._state_names:
        np.testing.assert_array_equal(getattr(loaded, attr), getattr(model, attr))
    assert loaded.sample(50, np.random.default_rng(3)).equals(
        model.sample(50, np.random.default_rng(3))
    )
    np.testing.assert_array_equal(loaded.score(test), model.score(test))
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["family"] == name
    other = next(f for f in FAMILIES if f != name)
    with pytest.raises(ArtifactError, match="family"):
        get_family(other).model.load(path)


@pytest.mark.parametrize("name", FAMILIES)
def test_estimator_contract(name):
    family, truth, _, train, _ = fitted(name)
    model = build(name, truth, 11)
    assert set(vars(model)) == set(model._param_names)  # __init__ stores params only
    assert model.random_state == 11
    json.dumps(model.get_params())  # parameters are JSON-serialisable
    assert family.model(**model.get_params()).get_params() == model.get_params()
    assert all(name.endswith("_") for name in model._state_names)
    assert not model.is_fitted()
    with pytest.raises(RuntimeError, match="not fitted"):
        model.save("unused.safetensors")
    with pytest.raises(RuntimeError, match="not fitted"):
        model.sample(3, np.random.default_rng(0))
    assert model.fit(train) is model
    assert all(isinstance(getattr(model, a), np.ndarray) for a in model._state_names)


@pytest.mark.parametrize("name", FAMILIES)
def test_determinism_and_sample_schema(name):
    family, truth, model, train, test = fitted(name)
    again = build(name, truth, 7).fit(train)
    for attr in model._state_names:
        assert getattr(again, attr).tobytes() == getattr(model, attr).tobytes()
    a, b = model.sample(100, np.random.default_rng(5)), model.sample(100, np.random.default_rng(5))
    assert a.equals(b)
    assert not a.equals(model.sample(100, np.random.default_rng(6)))
    assert a.schema == train.schema
    scores = model.score(test)
    assert scores.shape == (len(test),) and scores.dtype == np.float64
    settings = dict(generations=3, samples_per_generation=60, chains=4)
    runs = [
        ensemble(name, truth, np.random.default_rng(9), regime="mix", real_fraction=0.2, **settings)
        for _ in range(2)
    ]
    for metric, values in runs[0].items():
        assert values.shape == (3, 4)
        assert values.tobytes() == runs[1][metric].tobytes()


@pytest.mark.parametrize("name", FAMILIES)
def test_evaluate_returns_exactly_the_contract_metrics(name):
    family, truth, model, _, test = fitted(name)
    metrics = family.evaluate(model, truth, test, model.sample(100, np.random.default_rng(1)))
    assert set(metrics) == METRICS[name]
    assert all(type(v) is float for v in metrics.values())
    chains = ensemble(
        name, truth, np.random.default_rng(0), generations=2, samples_per_generation=50, chains=3
    )
    assert set(chains) <= METRICS[name]  # same names as evaluate, where computable


@pytest.mark.parametrize(
    ("name", "spec", "key"),
    [
        ("gaussian", {"mean": 0.0, "std": 1.0}, "'dim'"),
        ("gaussian", {"dim": 2, "mean": [0.0], "std": 1.0}, "'mean'"),
        ("gaussian", {"dim": 1, "std": -1.0}, "'std'"),
        ("gaussian", {"dim": 2, "cov": [[1.0, 2.0], [2.0, 1.0]]}, "'cov'"),
        ("gaussian", {"dim": 1, "std": 1.0, "sigma": 1.0}, "'sigma'"),
        (
            "gmm",
            {"weights": [0.5, 0.6], "means": [[0.0], [1.0]], "covariances": [[[1.0]]] * 2},
            "'weights'",
        ),
        (
            "gmm",
            {"weights": [0.5, 0.5], "means": [[0.0], [1.0]], "covariances": [[[1.0]]]},
            "'covariances'",
        ),
        ("gmm", {"weights": [0.5, 0.5], "covariances": [[[1.0]]] * 2}, "'means'"),
        ("categorical", {"num_symbols": 0, "zipf_exponent": 1.0}, "'num_symbols'"),
        ("categorical", {"num_symbols": 5}, "'zipf_exponent'"),
        ("linear_regression", {"dim": 2}, "'noise_std'"),
        ("linear_regression", {"dim": 2, "noise_std": 1.0, "weights": [1.0]}, "'weights'"),
    ],
)
def test_truth_spec_errors_name_the_key(name, spec, key):
    with pytest.raises(ValueError, match=key):
        get_family(name).truth_from_spec(spec)


@pytest.mark.parametrize(
    ("name", "options", "key"),
    [
        ("gaussian", {"estimator": "robust"}, "options.estimator"),
        ("gaussian", {"sample_scale": 0.0}, "options.sample_scale"),
        ("gaussian", {"temperature": 1.0}, "'temperature'"),
        ("gmm", {"n_components": 0}, "options.n_components"),
        ("gmm", {"covariance_type": "banded"}, "options.covariance_type"),
        ("categorical", {"smoothing": 1.0}, "'smoothing'"),
        ("linear_regression", {"ridge": 1.0}, "'ridge'"),
    ],
)
def test_bad_options_name_the_key(name, options, key):
    with pytest.raises(ConfigError, match=key):
        family_options(name, options)


# --- Gaussian ---------------------------------------------------------------------


def test_gaussian_fit_sample_score_against_numpy_and_scipy():
    _, truth, model, train, test = fitted("gaussian")
    x = train.to_pandas().to_numpy()
    np.testing.assert_allclose(model.mean_, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(model.covariance_, np.cov(x, rowvar=False), rtol=1e-12)
    mle = build("gaussian", truth, 0, estimator="mle").fit(train)
    np.testing.assert_allclose(mle.covariance_, np.cov(x, rowvar=False, ddof=0), rtol=1e-12)
    expected = scipy.stats.multivariate_normal(model.mean_, model.covariance_).logpdf(test)
    np.testing.assert_allclose(model.score(test), expected, rtol=1e-12)
    scaled = build("gaussian", truth, 0, sample_scale=4.0).fit(train)
    draws = scaled.sample(40000, np.random.default_rng(0)).to_pandas().to_numpy()
    np.testing.assert_allclose(np.cov(draws, rowvar=False), 4 * model.covariance_, rtol=0.05)


def test_gaussian_truth_from_std_and_scalar_mean():
    truth = gaussian.truth_from_spec({"dim": 3, "mean": 2.0, "std": 0.5})
    np.testing.assert_array_equal(truth.mean_, [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(truth.covariance_, 0.25 * np.eye(3))


def test_w2_sq_matches_sqrtm_formula_and_1d_value():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    s1, s2 = a @ a.T + 0.1 * np.eye(3), b @ b.T + 0.1 * np.eye(3)
    m1, m2 = rng.normal(size=3), rng.normal(size=3)
    root = scipy.linalg.sqrtm(s2)
    expected = ((m1 - m2) ** 2).sum() + np.trace(
        s1 + s2 - 2 * np.real(scipy.linalg.sqrtm(root @ s1 @ root))
    )
    assert gaussian.w2_sq(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-9)
    # 1-D: (mu1 - mu2)^2 + (sigma1 - sigma2)^2
    value = gaussian.w2_sq(np.array([1.0]), np.array([[4.0]]), np.array([-0.5]), np.array([[0.25]]))
    assert value == pytest.approx(1.5**2 + (2.0 - 0.5) ** 2, rel=1e-12)
    # batched, and zero for identical singular covariances
    batch = gaussian.w2_sq(np.stack([m1, m2]), np.stack([s1, s2]), m2, s2)
    assert batch[0] == pytest.approx(expected, rel=1e-9) and batch[1] == pytest.approx(0, abs=1e-9)
    flat = np.diag([1.0, 0.0, 0.0])
    assert gaussian.w2_sq(m1, flat, m1, flat) == pytest.approx(0.0, abs=1e-12)


def test_gaussian_evaluate_by_hand():
    truth = gaussian.truth_from_spec({"dim": 2, "mean": 0.0, "std": 2.0})
    model = build("gaussian", truth, 0)
    model.mean_, model.covariance_ = np.array([1.0, 2.0]), np.diag([1.0, 9.0])
    # Mahalanobis under N(0, 4I): |x| / 2; rows at radius 5.8 and 6.2 straddle 3.
    samples = pa.table({"x0": [0.0, 6.2, 0.0, 1.0], "x1": [5.8, 0.0, 0.0, 1.0]})
    test = pa.table({"x0": [1.0], "x1": [2.0]})
    out = gaussian.evaluate(model, truth, test, samples)
    assert out["mean_sq_error"] == pytest.approx(5.0)
    assert out["var_trace"] == pytest.approx(10.0)
    assert out["w2_sq"] == pytest.approx(5.0 + (1 - 2) ** 2 + (3 - 2) ** 2)
    assert out["tail_mass"] == pytest.approx(0.25)
    assert out["test_nll"] == pytest.approx(math.log(2 * math.pi) + 0.5 * math.log(9.0))


# --- GMM --------------------------------------------------------------------------


def _sorted(means, *others):
    """Components in the order of their first mean coordinate (EM's labels are arbitrary)."""
    order = np.argsort(np.asarray(means)[:, 0])
    return [np.asarray(a)[order] for a in (means, *others)]


def test_gmm_fit_matches_sklearn_and_scores_its_density():
    """The model's own EM (no scikit-learn in a generation job) reaches scikit-learn's
    optimum: the same mixture and the same density, to the convergence tolerance."""
    _, truth, _, train, test = fitted("gmm", n=600)
    model = build("gmm", truth, 7, tol=1e-10).fit(train)
    x = train.to_pandas().to_numpy()
    reference = GaussianMixture(2, tol=1e-10, max_iter=5000, random_state=7).fit(x)
    ours = _sorted(model.means_, model.covariances_, model.weights_)
    theirs = _sorted(reference.means_, reference.covariances_, reference.weights_)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    expected = reference.score_samples(test.to_pandas().to_numpy())
    np.testing.assert_allclose(model.score(test), expected, rtol=1e-7)
    # Deterministic in its random state; the fit itself never imports scikit-learn.
    again = build("gmm", truth, 7, tol=1e-10).fit(train)
    assert np.array_equal(again.means_, model.means_)


def test_a_gmm_generation_job_does_not_import_sklearn():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from modelcollapse.families import get_family\n"
        "from modelcollapse.config import family_options\n"
        "gmm = get_family('gmm')\n"
        "truth = gmm.truth_from_spec({'weights': [0.5, 0.5], 'means': [[-2, 0], [2, 0]],"
        " 'covariances': [[[1, 0], [0, 1]], [[1, 0], [0, 1]]]})\n"
        "m = gmm.build_model(family_options('gmm'), truth, 0)\n"
        "m.fit(truth.sample(200, np.random.default_rng(0)))\n"
        "m.score(truth.sample(10, np.random.default_rng(1)))\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] == 'sklearn'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_gmm_covariance_types_are_stored_full(covariance_type):
    _, truth, _, train, test = fitted("gmm")
    model = build("gmm", truth, 0, covariance_type=covariance_type, tol=1e-10).fit(train)
    assert model.covariances_.shape == (2, 2, 2)
    reference = GaussianMixture(
        2, covariance_type=covariance_type, tol=1e-10, max_iter=5000, random_state=0
    )
    reference.fit(train.to_pandas().to_numpy())
    np.testing.assert_allclose(
        model.score(test), reference.score_samples(test.to_pandas().to_numpy()), rtol=1e-5
    )


def test_gmm_samples_follow_the_mixture():
    spec = {**SPECS["gmm"], "means": [[-10.0, 0.0], [10.0, 1.0]]}
    truth = gmm.truth_from_spec(spec)
    x = truth.sample(40000, np.random.default_rng(0)).to_pandas().to_numpy()
    left = x[:, 0] < 0  # components are over 9 standard deviations from x0 = 0
    assert left.mean() == pytest.approx(0.3, abs=0.01)
    np.testing.assert_allclose(np.cov(x[left], rowvar=False), truth.covariances_[0], atol=0.05)
    np.testing.assert_allclose(x[~left].mean(0), truth.means_[1], atol=0.03)


def test_l2_density_matches_grid_integration():
    truth = gmm.truth_from_spec(SPECS["gmm"])
    other = build("gmm", truth, 0, n_components=3)
    other.weights_ = np.array([0.2, 0.5, 0.3])
    other.means_ = np.array([[-1.0, 0.5], [1.5, 1.0], [3.0, -1.0]])
    other.covariances_ = np.array([np.eye(2), [[0.5, 0.2], [0.2, 0.8]], 2 * np.eye(2)])
    axis = np.linspace(-9, 9, 721)
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    frame = tables.from_matrix(grid, ["x0", "x1"])
    diff2 = (np.exp(truth.score(frame)) - np.exp(other.score(frame))) ** 2
    numeric = diff2.sum() * (axis[1] - axis[0]) ** 2
    params = [(m.weights_, m.means_, m.covariances_) for m in (other, truth)]
    closed = gmm.l2_density(*params[0], *params[1])
    assert closed == pytest.approx(numeric, rel=1e-6)
    assert gmm.l2_density(*params[1], *params[1]) == pytest.approx(0.0, abs=1e-15)
    out = gmm.evaluate(other, truth, frame.slice(0, 5), frame.slice(0, 5))
    assert out["l2_density"] == pytest.approx(closed)
    # sorted by the first coordinate of the means; spread = sqrt(tr cov / d)
    assert [out[f"weight_{k}"] for k in range(3)] == pytest.approx([0.2, 0.5, 0.3])
    assert out["spread_1"] == pytest.approx(math.sqrt(1.3 / 2))
    swapped = build("gmm", truth, 0, n_components=3)
    swapped.weights_, swapped.means_ = other.weights_[::-1], other.means_[::-1]
    swapped.covariances_ = other.covariances_[::-1]
    assert gmm.evaluate(swapped, truth, frame.slice(0, 5), frame.slice(0, 5)) == pytest.approx(out)


def test_batched_em_matches_sklearn_per_chain():
    truth = gmm.truth_from_spec(SPECS["gmm"])
    rng = np.random.default_rng(3)
    x = np.stack([truth.sample(300, rng).to_pandas().to_numpy() for _ in range(6)])
    weights, means, covs, loglik = gmm.batched_em(x, 2, np.random.default_rng(0), tol=1e-10)
    for k in range(6):
        ref = GaussianMixture(2, tol=1e-10, max_iter=5000, random_state=k).fit(x[k])
        a, b = np.argsort(ref.means_[:, 0]), np.argsort(means[k, :, 0])
        np.testing.assert_allclose(means[k, b], ref.means_[a], atol=1e-6)
        np.testing.assert_allclose(covs[k, b], ref.covariances_[a], atol=1e-6)
        np.testing.assert_allclose(weights[k, b], ref.weights_[a], atol=1e-6)
        assert loglik[k] == pytest.approx(ref.score(x[k]), abs=1e-8)


def test_gmm_ensemble_measures_like_evaluate():
    truth = gmm.truth_from_spec(SPECS["gmm"])
    family = gmm.batched(truth, family_options("gmm"))
    rng = np.random.default_rng(0)
    params = family.fit(family.draw_truth(3, 200, rng), rng)
    batched = family.measure(params, family.sample(params, 10, rng))
    for k in range(3):
        model = build("gmm", truth, 0)
        model.weights_, model.means_, model.covariances_ = (p[k] for p in params)
        single = gmm.evaluate(model, truth, truth.sample(5, rng), truth.sample(5, rng))
        for name, values in batched.items():
            assert values[k] == pytest.approx(single[name], rel=1e-12)


# --- categorical and linear regression ------------------------------------------


def test_categorical_by_hand():
    truth = categorical.truth_from_spec({"num_symbols": 4, "zipf_exponent": 1.0})
    np.testing.assert_allclose(truth.probs_, np.array([12, 6, 4, 3]) / 25)
    model = build("categorical", truth, 0)
    model.fit(pa.table({"symbol": np.array([0, 0, 0, 2], dtype=np.int64)}))
    np.testing.assert_array_equal(model.probs_, [0.75, 0.0, 0.25, 0.0])
    out = categorical.evaluate(model, truth, None, None)
    assert out["gini_impurity"] == pytest.approx(1 - 0.75**2 - 0.25**2)
    assert out["support_size"] == 2.0
    assert out["entropy"] == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    tv = 0.5 * (abs(0.75 - 0.48) + 0.24 + abs(0.25 - 0.16) + 0.12)
    assert out["tv_distance"] == pytest.approx(tv)
    scores = model.score(pa.table({"symbol": np.array([0, 1], dtype=np.int64)}))
    assert scores[0] == pytest.approx(math.log(0.75)) and scores[1] == -np.inf
    assert set(model.sample(1000, np.random.default_rng(0))["symbol"].to_pylist()) == {0, 2}
    with pytest.raises(ValueError, match="0..3"):
        model.fit(pa.table({"symbol": np.array([4], dtype=np.int64)}))


def test_linear_regression_fit_and_score():
    _, truth, model, train, test = fitted("linear_regression", n=2000)
    np.testing.assert_allclose(truth.coef_, np.ones(3) / math.sqrt(3))
    train, test = train.to_pandas(), test.to_pandas()
    x, y = train[["x0", "x1", "x2"]].to_numpy(), train["y"].to_numpy()
    np.testing.assert_allclose(model.coef_, np.linalg.lstsq(x, y, rcond=None)[0], rtol=1e-12)
    assert model.noise_std == 0.5
    resid = test["y"].to_numpy() - test[["x0", "x1", "x2"]].to_numpy() @ model.coef_
    arrow_test = pa.Table.from_pandas(test, preserve_index=False)
    np.testing.assert_allclose(model.score(arrow_test), scipy.stats.norm(0, 0.5).logpdf(resid))
    out = linear_regression.evaluate(model, truth, arrow_test, arrow_test)
    assert out["excess_risk"] == pytest.approx(((model.coef_ - truth.coef_) ** 2).sum())
    draws = model.sample(20000, np.random.default_rng(1)).to_pandas()
    noise = draws["y"] - draws[["x0", "x1", "x2"]].to_numpy() @ model.coef_
    assert noise.std() == pytest.approx(0.5, rel=0.02)


@pytest.mark.parametrize("name", ["lm", "vae"])
def test_neural_model_defaults_are_the_schema_defaults(name):
    """The neural models keep scikit-learn style keyword defaults (tests and benchmarks
    build them directly); the schema file stays the one source: they must agree."""
    family = get_family(name)
    params = family.model().get_params()
    defaults = family.option_defaults()
    shared = set(defaults) & set(params)
    assert len(shared) >= 5, shared
    for option in shared:
        assert params[option] == defaults[option], option
