"""reports/lineage.md: the ledger as one Markdown table per run, for a reviewer.

Deterministic text (no commit, no time): the same ledger content always gives the
same bytes, whichever tool (Snakemake or DVC) wrote the artifacts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelcollapse.lineage.chain import compact, settings_changes
from modelcollapse.lineage.records import (
    LEDGER_DIR,
    chain_records,
    ledger_records,
    ledger_runs,
    read_record,
)
from modelcollapse.settings import is_root, root_name, root_settings

SUMMARY_NAME = "lineage.md"
MD5_CHARS = 10

INTRO = f"""\
# Lineage summary

Per run, from the lineage ledger (`{LEDGER_DIR}/<run>/gen_NNNN.json`, tracked in git):
the human data it started from, how much of each generation's training data was
human, and the settings its generations were built with. Two shares:

- *direct human share*: the share of human rows in a generation's training set;
- *effective human share*: follow each training row back to the human data (a
  synthetic row is itself plus one row of what its model learned from): the share of
  human rows among all the rows on those paths. Under replace it is 1/(g + 1) with
  no human row in the set; under mix it tends to the real fraction (docs/lineage.md).

Hashes are md5s (the ones DVC records), shortened to {MD5_CHARS} hex digits. What
changed since a git revision: `python -m modelcollapse lineage diff <rev>`; every
generation's hashes: `python -m modelcollapse lineage summary --full`; the check of
hashes, hash chain and `dvc.lock`: `python -m modelcollapse lineage verify`.
"""


def _md5(rec: dict[str, Any], name: str) -> str:
    return f"`{rec['artifacts'][name]['md5'][:MD5_CHARS]}`"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}–{last}"


def _settings_line(settings: Mapping[str, Any], recorded: int) -> str:
    head = ", ".join(
        f"{k} {settings[k]}"
        for k in ("family", "human", "regime", "real_fraction", "samples_per_generation", "seed")
        if settings.get(k) is not None
    )
    return head + f"; {recorded} generation(s) recorded"


def _human_lines(rec: dict[str, Any]) -> list[str]:
    human = rec.get("human_data") or {}
    files = human.get("files") or {}
    listed = ", ".join(
        f"{name} `{entry['md5'][:MD5_CHARS]}`" for name, entry in sorted(files.items())
    )
    return [f"Human data `{human.get('source', '?')}`: {listed or 'not recorded'}."]


def _share_rows(records: dict[int, dict[str, Any] | None]) -> list[str]:
    """Generations grouped while their direct share and settings stay the same; the
    effective share given at the group's first and last generation."""
    rows = [
        "| generations | direct human share | effective human share |",
        "|---|---:|---:|",
    ]
    group: list[tuple[int, dict[str, Any]]] = []

    def flush() -> None:
        if not group:
            return
        (g0, r0), (g1, r1) = group[0], group[-1]
        e0, e1 = r0["human_share"]["effective"], r1["human_share"]["effective"]
        effective = (
            f"{e0:.3f}" if g0 == g1 or f"{e0:.3f}" == f"{e1:.3f}" else f"{e0:.3f} → {e1:.3f}"
        )
        rows.append(f"| {_span(g0, g1)} | {r0['human_share']['direct']:.3f} | {effective} |")
        group.clear()

    for g, rec in records.items():
        if rec is None:
            flush()
            rows.append(f"| {g} | **ledger record missing** | |")
            continue
        if group:
            last = group[-1][1]
            same_direct = (
                f"{last['human_share']['direct']:.3f}" == f"{rec['human_share']['direct']:.3f}"
            )
            if not same_direct or settings_changes(last["settings"], rec["settings"]):
                flush()
        group.append((g, rec))
    flush()
    return rows


def _root(settings: Mapping[str, Any]) -> str | None:
    try:
        return root_name(settings)
    except KeyError:
        return None


def run_table(
    run: str,
    settings: Mapping[str, Any],
    root: str | Path = ".",
    full: bool = False,
    runs_settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[str]:
    """One run's section: its human data, the root it starts from (and the runs of
    ``runs_settings`` that share it), its shares by generation (grouped), the settings
    changes within its ledger and its last generation's hashes; ``full``: one row per
    generation with every hash."""
    runs_settings = runs_settings or {}
    paths = chain_records(run, root)
    lines = [f"## {run}", "", _settings_line(settings, len(paths)), ""]
    if not paths:
        return lines + ["No ledger records.", ""]
    records = {g: (read_record(paths[g]) if g in paths else None) for g in range(max(paths) + 1)}
    present = [(g, r) for g, r in records.items() if r is not None]
    first = present[0][1]
    last_g, last = present[-1]
    lines += [*_human_lines(first), ""]
    if is_root(first["run"]):
        shared = [r for r, s in runs_settings.items() if r != run and _root(s) == first["run"]]
        lines += [
            f"Generation 0 is the root `{first['run']}`"
            + (f", shared with {', '.join(shared)}" if shared else "")
            + f" (model.safetensors {_md5(first, 'model.safetensors')}).",
            "",
        ]
    if full:
        lines += _full_rows(records)
    else:
        lines += _share_rows(records)
    changes = []
    for (_, a), (g, b) in zip(present, present[1:], strict=False):
        ours, theirs = a["settings"], b["settings"]
        if is_root(a["run"]):  # a root records only what generation 0 reads
            theirs = root_settings(theirs)
        if diff := settings_changes(ours, theirs):
            changes.append(f"generation {g}: {'; '.join(diff)}")
    own = next((r for _, r in present if not is_root(r["run"])), None)
    lines += [
        "",
        "Settings changed within the ledger: " + (_escape(", ".join(changes)) or "none") + ".",
        f"Last generation ({last_g}): model.safetensors {_md5(last, 'model.safetensors')}, "
        f"samples.parquet {_md5(last, 'samples.parquet')}, content hash "
        f"`{last['content_hash'][:MD5_CHARS]}`.",
        f"Settings: `{_escape(compact((own or first)['settings']))}`",
        "",
    ]
    return lines


def _full_rows(records: dict[int, dict[str, Any] | None]) -> list[str]:
    lines = [
        "| generation | direct human share | effective human share | train.json "
        "| model.safetensors | samples.parquet | settings changed |",
        "|---:|---:|---:|---|---|---|---|",
    ]
    prev: dict[str, Any] | None = None
    for g, rec in records.items():
        if rec is None:
            lines.append(f"| {g} | | | | | | **ledger record missing** |")
            prev = None
            continue
        share = rec["human_share"]
        if prev is None:
            changed = "first recorded" if g else "-"
        else:
            ours = root_settings(rec["settings"]) if g == 1 else rec["settings"]
            changed = "; ".join(settings_changes(prev, ours)) or "none"
        lines.append(
            f"| {g} | {share['direct']:.4f} | {share['effective']:.4f} | "
            f"{_md5(rec, 'train.json')} | {_md5(rec, 'model.safetensors')} | "
            f"{_md5(rec, 'samples.parquet')} | {_escape(changed)} |"
        )
        prev = rec["settings"]
    return lines


def lineage_summary_text(
    runs: Mapping[str, Mapping[str, Any]], root: str | Path = ".", full: bool = False
) -> str:
    """The Markdown of reports/lineage.md for ``runs`` (run id -> settings), in that
    order; ``full``: every generation's hashes (``lineage summary --full``)."""
    lines = [INTRO]
    for run, settings in runs.items():
        lines += run_table(run, settings, root, full=full, runs_settings=runs)
    return "\n".join(lines).rstrip("\n") + "\n"


def ledger_settings(root: str | Path = ".") -> dict[str, dict[str, Any]]:
    """Every run with ledger records (``records.ledger_runs``) -> the settings its first
    record holds."""
    out: dict[str, dict[str, Any]] = {}
    for run in ledger_runs(root):
        paths = ledger_records(run, root)
        out[run] = read_record(paths[min(paths)])["settings"]  # generation 1's: the run's
    return out
