"""Every artifact path pattern, in one place (the layout in the README)."""

from __future__ import annotations

import os
import re
from pathlib import Path

HUMAN_DIR = "data/human/{source}"
RUN_DIR = "data/runs/{run}"
GEN_DIR = "data/runs/{run}/gen_{gen}"
# Generation 0 of every run whose generation-0 settings are equal: a *root*, named
# roots/<source>/<root id> where a run id would stand (modelcollapse.settings.root_name).
ROOTS_DIR = "data/roots/{source}"
ROOT_GEN_DIR = "data/roots/{source}/{root}/gen_0000"
RESULTS_DIR = "results/{run}"
REPORT_DIR = "reports"  # outside results/: the DVC report stage depends on results/
LOG_DIR = "logs/{run}"

# A statistical source's files; a source on real data keeps its own beside
# pool/test (a tokenizer, source.json): see human_files().
HUMAN_FILES = ("pool.parquet", "test.parquet", "truth.safetensors", "truth.json")
GEN_FILES = ("train.json", "model.safetensors", "model.json", "samples.parquet", "metrics.json")


def gen_tag(generation: int) -> str:
    """Zero-padded generation directory suffix: 42 -> '0042'."""
    return f"{generation:04d}"


def human_dir(source: str, root: str | Path = ".") -> Path:
    return Path(root) / HUMAN_DIR.format(source=source)


def human_file(source: str, name: str, root: str | Path = ".") -> Path:
    return human_dir(source, root) / name


def chain_dir(chain: str) -> str:
    """A chain's directory: ``data/runs/<run>``, or ``data/roots/<source>/<id>`` for a
    root (``chain`` = ``roots/<source>/<id>``; run ids have no '/')."""
    return f"data/{chain}" if "/" in chain else f"data/runs/{chain}"


def gen_dir(run: str, generation: int, root: str | Path = ".") -> Path:
    """Generation ``generation`` of chain ``run`` (a run id, or a root's name for the
    generation 0 of the runs that share it: ``RunSettings.chain``)."""
    return Path(root) / chain_dir(run) / f"gen_{gen_tag(generation)}"


def gen_file(run: str, generation: int, name: str, root: str | Path = ".") -> Path:
    return gen_dir(run, generation, root) / name


def gen_path(run: str, generation: int, name: str, root: str = "") -> str:
    """:func:`gen_file` as a string: where thousands of generations are listed (the
    planner, the Snakefile's inputs), pathlib's objects are most of the cost. Without
    ``root``, relative and without a leading ``./`` (as Snakemake wants its paths)."""
    return os.path.join(root, chain_dir(run), f"gen_{gen_tag(generation)}", name)


def results_dir(run: str, root: str | Path = ".") -> Path:
    return Path(root) / RESULTS_DIR.format(run=run)


def human_files(source: str, root: str | Path = ".") -> list[str]:
    """The files of a prepared human source (hidden bookkeeping files left out)."""
    directory = human_dir(source, root)
    if not directory.is_dir():
        return list(HUMAN_FILES)  # not prepared: name what should be there
    return sorted(p.name for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


_JOB_PATTERNS = (
    (re.compile(r"data/runs/(?P<name>[^/]+)/gen_(?P<gen>\d+)(/[^/]+)?"), "generation"),
    (
        re.compile(r"data/(?P<name>roots/[^/]+/[^/]+)/gen_(?P<gen>0000)(/[^/]+)?"),
        "generation",
    ),
    (re.compile(r"data/human/(?P<name>[^/]+)(/.*)?"), "human"),
    (
        re.compile(r"results/(?P<name>[^/]+)/(\.metrics\.build\.json|metrics\.csv|summary\.json)"),
        "metrics",
    ),
    (re.compile(r"results/(?P<name>[^/]+)/(\.ensemble\.build\.json|ensemble\.csv)"), "ensemble"),
    (re.compile(r"results/(?P<name>[^/]+)/figures(/.*)?"), "figures"),
    (re.compile(rf"{REPORT_DIR}(/.*)?"), "report"),
)


def job_of_path(path: str) -> tuple[str, str | None, int | None] | None:
    """The step that writes ``path`` (relative to the workflow root), as
    ``(step, run or source, generation)``; None for any other path."""
    path = Path(path).as_posix().removeprefix("./").rstrip("/")
    for pattern, step in _JOB_PATTERNS:
        m = pattern.fullmatch(path)
        if m:
            groups = m.groupdict()
            gen = int(groups["gen"]) if groups.get("gen") else None
            return (step, groups.get("name"), gen)
    return None
