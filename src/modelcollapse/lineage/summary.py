"""reports/lineage.md: the ledger as one Markdown table per run, for a reviewer.

Deterministic text (no commit, no time): the same ledger content always gives the
same bytes, whichever tool (Snakemake or DVC) wrote the artifacts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelcollapse.lineage.chain import compact, settings_changes
from modelcollapse.lineage.records import LEDGER_DIR, ledger_records, read_record

SUMMARY_NAME = "lineage.md"
MD5_CHARS = 10

INTRO = f"""\
# Lineage summary

One table per run, from the lineage ledger (`{LEDGER_DIR}/<run>/gen_NNNN.json`, tracked
in git). *Effective human share*: the share of human rows among every row on the
paths from a generation's training rows back to the human data (a synthetic row
stands for itself and one row of what its generator learned from); *direct*: the
share of human rows in the training set itself. Hashes are the files' md5s (the
md5s DVC records), shortened to {MD5_CHARS} hex digits. To check them against the
files, the hash chain and `dvc.lock`: `python -m modelcollapse lineage verify`.
"""


def _md5(rec: dict[str, Any], name: str) -> str:
    return f"`{rec['artifacts'][name]['md5'][:MD5_CHARS]}`"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def run_table(run: str, settings: Mapping[str, Any], root: str | Path = ".") -> list[str]:
    paths = ledger_records(run, root)
    head = ", ".join(
        f"{k} {settings[k]}"
        for k in ("family", "human", "regime", "real_fraction", "samples_per_generation", "seed")
        if settings.get(k) is not None
    )
    lines = [f"## {run}", "", head + f"; {len(paths)} generation(s) recorded", ""]
    if not paths:
        return lines + ["No ledger records.", ""]
    lines += [
        "| generation | effective human share | direct | train.json | model.safetensors "
        "| samples.parquet | settings changed |",
        "|---:|---:|---:|---|---|---|---|",
    ]
    prev: dict[str, Any] | None = None
    for g in range(max(paths) + 1):
        if g not in paths:
            lines.append(f"| {g} | | | | | | **ledger record missing** |")
            prev = None
            continue
        rec = read_record(paths[g])
        share = rec["human_share"]
        if prev is None:
            changed = "first recorded" if g else "-"
        else:
            changed = "; ".join(settings_changes(prev, rec["settings"])) or "none"
        lines.append(
            f"| {g} | {share['effective']:.4f} | {share['direct']:.4f} | "
            f"{_md5(rec, 'train.json')} | {_md5(rec, 'model.safetensors')} | "
            f"{_md5(rec, 'samples.parquet')} | {_escape(changed)} |"
        )
        prev = rec["settings"]
    first = read_record(paths[min(paths)])
    lines += ["", f"Settings: `{_escape(compact(first['settings']))}`", ""]
    return lines


def lineage_summary_text(runs: Mapping[str, Mapping[str, Any]], root: str | Path = ".") -> str:
    """The Markdown of reports/lineage.md for ``runs`` (run id -> settings), in that order."""
    lines = [INTRO]
    for run, settings in runs.items():
        lines += run_table(run, settings, root)
    return "\n".join(lines).rstrip("\n") + "\n"
