"""Regimes compose training sets as manifests of references (the README's regimes table)."""

import json

import numpy as np
import pytest

from modelcollapse import io, tables
from modelcollapse.config import make_run_settings
from modelcollapse.ensemble import RegimeComposer
from modelcollapse.manifest import (
    composition,
    iter_parts,
    load_training_set,
    read_manifest,
    to_ranges,
)
from modelcollapse.paths import gen_file, human_file
from modelcollapse.regimes import compose_training_set, real_row_count

N = 10
POOL = 1000


@pytest.fixture
def root(tmp_path):
    """A human pool and, per generation, samples whose values encode their origin."""
    pool = tables.from_columns({"x0": np.arange(POOL, dtype=float)})
    io.write_table(
        human_file("h", "pool.parquet", tmp_path),
        tables.with_columns(pool, source="human", origin_generation=np.int64(-1), origin_md5="t"),
    )
    return tmp_path


def write_samples(root, generation, chain="run"):
    values = 10_000.0 * (generation + 1) + np.arange(N)
    frame = tables.with_columns(
        tables.from_columns({"x0": values}),
        source="synthetic",
        origin_generation=np.int64(generation),
        model_md5="m",
    )
    io.write_table(gen_file(chain, generation, "samples.parquet", root), frame)


def build_chain(root, regime, generations, real_fraction=None, seed=0):
    settings = make_run_settings(
        "gaussian",
        human="h",
        samples_per_generation=N,
        generations=generations,
        regime=regime,
        real_fraction=real_fraction,
    )
    manifests = []
    for g in range(generations):
        manifest = compose_training_set("run", g, settings, np.random.default_rng([seed, g]), root)
        chain = settings.chain("run", g)  # generation 0: the run's root's
        io.write_json(gen_file(chain, g, "train.json", root), manifest)
        write_samples(root, g, chain)
        manifests.append(manifest)
    return manifests


def origins(frame):
    return frame["origin_generation"].value_counts().to_dict()


def test_real_row_count_rounds_half_up():
    assert real_row_count(100, 0.1) == 10
    assert real_row_count(10, 0.25) == 3
    assert real_row_count(10, 0.0) == 0
    assert real_row_count(10, 1.0) == 10


def test_to_ranges_compresses_consecutive_rows():
    assert to_ranges(np.array([0, 1, 2, 5, 7, 8])) == [[0, 3], [5, 6], [7, 9]]
    assert to_ranges(np.array([], dtype=int)) == []


def test_generation_zero_trains_on_first_n_human_rows(root):
    (m0,) = build_chain(root, "replace", 1)
    data = load_training_set(m0, root).to_pandas()
    assert data["x0"].tolist() == list(range(N))
    assert set(data["source"]) == {"human"}
    assert data["origin_md5"].iloc[0] == io.file_md5(human_file("h", "pool.parquet", root))


def test_replace_trains_on_previous_samples_only(root):
    manifests = build_chain(root, "replace", 4)
    data = load_training_set(manifests[3], root).to_pandas()
    assert origins(data) == {2: N}
    assert data["x0"].tolist() == list(30_000.0 + np.arange(N))


@pytest.mark.parametrize("regime", ["mix", "fresh"])
def test_mix_and_fresh_take_real_fraction_from_humans(root, regime):
    manifests = build_chain(root, regime, 5, real_fraction=0.3)
    k = real_row_count(N, 0.3)
    human_values = []
    for g in range(1, 5):
        data = load_training_set(manifests[g], root).to_pandas()
        assert origins(data) == {-1: k, g - 1: N - k}
        human_values.append(sorted(data.loc[data.source == "human", "x0"]))
    if regime == "fresh":  # never reused: consecutive unused pool rows after gen 0's N
        flat = [v for vs in human_values for v in vs]
        assert flat == list(range(N, N + 4 * k))
    else:
        assert all(len(set(v)) == k for v in human_values)


def test_accumulate_keeps_everything_and_manifests_stay_small(root):
    manifests = build_chain(root, "accumulate", 30)
    data = load_training_set(manifests[29], root).to_pandas()
    assert len(data) == 30 * N
    assert origins(data) == {-1: N, **{g: N for g in range(29)}}
    sizes = [len(json.dumps(m)) for m in manifests[2:]]
    assert max(sizes) - min(sizes) < 20, "accumulate manifests must not grow with generation"


def test_accumulate_subsample_draws_n_distinct_rows_from_accumulated_pool(root):
    manifests = build_chain(root, "accumulate_subsample", 12)
    seen = set()
    for g in range(1, 12):
        data = load_training_set(manifests[g], root).to_pandas()
        assert len(data) == N
        assert not data.duplicated(["origin_generation", "x0"]).any()
        assert data["origin_generation"].max() <= g - 1
        seen |= set(data["origin_generation"])
    assert len(seen) > 5, "draws should reach back over many generations"


def test_composition_counts_rows_by_origin(root):
    manifests = build_chain(root, "accumulate", 3)
    comp = composition(manifests[2], root)
    assert comp["rows"] == 3 * N
    assert comp["human_rows"] == {"data/human/h/pool.parquet": N}
    assert comp["synthetic_rows"] == {"0": N, "1": N}
    assert comp["human_fraction"] == pytest.approx(1 / 3)


def test_modified_artifact_is_named_with_its_generation(root):
    manifests = build_chain(root, "accumulate", 4)
    target = gen_file("run", 1, "samples.parquet", root)
    write_samples_bytes = target.read_bytes()
    target.write_bytes(write_samples_bytes[:-1] + bytes([write_samples_bytes[-1] ^ 1]))
    with pytest.raises(io.ArtifactError) as info:
        load_training_set(manifests[3], root)
    assert "gen_0001/samples.parquet" in str(info.value)
    assert "generation 3" in str(info.value)


def test_missing_artifact_is_named(root):
    manifests = build_chain(root, "replace", 3)
    gen_file("run", 1, "samples.parquet", root).unlink()
    with pytest.raises(io.ArtifactError, match=r"missing artifact: .*gen_0001/samples.parquet"):
        load_training_set(manifests[2], root)


def test_deep_accumulate_chain_flattens_without_recursion(root):
    manifests = build_chain(root, "accumulate", 3)
    # Build a 3000-deep include chain by hand: iter_parts must not recurse.
    prev = gen_file("run", 2, "train.json", root)
    for i in range(3000):
        path = root / "deep" / f"m{i}.json"
        io.write_json(
            path,
            {
                "parts": [
                    {
                        "include": "manifest",
                        "path": str(prev.relative_to(root)),
                        "md5": io.file_md5(prev),
                    }
                ]
            },
        )
        prev = path
    parts = iter_parts(read_manifest(prev), root)
    assert len(parts) == len(iter_parts(manifests[2], root))


def _origin_counts(values: np.ndarray) -> dict[int, int]:
    """Rows by origin: -1 for human rows (values below 10 000), else the generation."""
    origin = np.where(values < 10_000, -1, values // 10_000 - 1).astype(int)
    return dict(zip(*np.unique(origin, return_counts=True), strict=True))


@pytest.mark.parametrize(
    ("regime", "real_fraction"),
    [("replace", None), ("mix", 0.3), ("fresh", 0.3), ("accumulate", None)],
)
def test_single_chain_and_ensemble_compose_the_same_training_sets(root, regime, real_fraction):
    """One definition of each regime, two implementations: the single chain composes
    manifests of file rows (modelcollapse.regimes), the ensemble arrays for K chains
    (modelcollapse.ensemble.RegimeComposer). Both take the same number of rows from
    the same origins in every generation. Where they differ by design: the ensemble
    draws human rows afresh from the known truth (an unlimited pool), the single chain
    reads them from the finite human pool, without repeats within a generation (mix)
    or ever (fresh); and accumulate_subsample draws the same distribution of rows
    with a different random stream (checked by each side's own tests)."""
    generations = 6
    manifests = build_chain(root, regime, generations, real_fraction)
    composer = RegimeComposer(
        regime,
        samples_per_generation=N,
        real_fraction=real_fraction,
        chains=1,
        generations=generations,
        draw_truth=lambda chains, n, rng: np.arange(n, dtype=float)[None, :, None],
        rng=np.random.default_rng(0),
    )
    previous = None
    for g in range(generations):
        single = tables.column(load_training_set(manifests[g], root), "x0")
        batched = composer.training_set(g, previous)[0, :, 0]
        assert _origin_counts(single) == _origin_counts(batched), (regime, g)
        synthetic = np.sort(single[single >= 10_000])
        np.testing.assert_array_equal(synthetic, np.sort(batched[batched >= 10_000]))
        previous = (10_000.0 * (g + 1) + np.arange(N))[None, :, None]  # as write_samples
