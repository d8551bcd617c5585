"""``lineage show``: a generation's chain back to the human data, as readable text."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from modelcollapse.lineage.records import (
    LEDGER_DIR,
    LedgerError,
    chain_records,
    ledger_records,
    ledger_roots,
    ledger_runs,
    parse_gen_path,
    read_record,
    record_path,
    rel,
)
from modelcollapse.settings import is_root, root_settings


def short(h: str | None, n: int = 12) -> str:
    return "-" if h is None else h[:n]


def compact(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(", ", ": "))


def ranges(values: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    spans: list[list[int]] = []
    for v in sorted(set(values)):
        if spans and v == spans[-1][1] + 1:
            spans[-1][1] = v
        else:
            spans.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def settings_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every top-level setting that differs."""
    return [
        f"{k}: {compact(old.get(k))} -> {compact(new.get(k))}"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    ]


def code_text(code: dict[str, Any]) -> str:
    state = {True: "dirty tree", False: "clean tree", None: "tree state unknown"}
    return f"{short(code.get('commit'))} ({state.get(code.get('dirty'), 'unknown')})"


def composition_text(comp: dict[str, Any]) -> str:
    parts = [f"{n} human ({p})" for p, n in comp["human_rows"].items()]
    parts += [f"{n} from generation {j}" for j, n in comp["synthetic_rows"].items()]
    return f"{comp['rows']} rows: " + ", ".join(parts)


def resolve(target: str, root: str | Path = ".") -> tuple[str, str | None, int | None]:
    """``('generation', run, g)`` or ``('human', path, None)`` for a show target."""
    root = Path(root)
    text = target
    if os.path.isabs(text) or (root / text).exists() or "/" in text:
        text = rel(text if os.path.isabs(text) else root / text, root).rstrip("/")
        if text.startswith("data/human/"):
            return ("human", text, None)
        parts = text.split("/")
        if len(parts) in (3, 5) and parts[0] == LEDGER_DIR and parts[-1].startswith("gen_"):
            chain = "/".join(parts[1:-1])  # a run, or a root: roots/<source>/<id>
            return ("generation", chain, int(parts[-1][4:].removesuffix(".json")))
        parsed = parse_gen_path(text) or parse_gen_path(text + "/x")
        if parsed:
            return ("generation", parsed[0], parsed[1])
        if len(parts) == 3 and parts[:2] == ["data", "runs"]:
            text = parts[2]
        else:
            raise LedgerError(f"{target}: not an artifact of a generation or of the human data")
    run, _, gen = text.partition(":")
    records = ledger_records(run, root)
    if not records:
        raise LedgerError(f"run {run!r} has no ledger records under {LEDGER_DIR}/{run}")
    if gen:
        try:
            g = int(gen)
        except ValueError:
            raise LedgerError(f"{target}: the generation must be an integer") from None
        if g == 0:  # a run's generation 0 is its root's
            zero = chain_records(run, root).get(0)
            if zero is not None:
                return ("generation", read_record(zero)["run"], 0)
        return ("generation", run, g)
    return ("generation", run, max(records))


def ancestry(run: str, generation: int, root: str | Path = ".") -> list[tuple[tuple, Any]]:
    """Every record the generation descends from (itself first), newest first.

    Items are ((run, generation), record); a missing record appears as its path.
    """
    root = Path(root)
    seen: dict[tuple[str, int], Any] = {}
    pending = [(run, generation)]
    while pending:
        key = pending.pop()
        if key in seen:
            continue
        path = record_path(*key, root)
        if not path.exists():
            seen[key] = rel(path, root)
            continue
        rec = read_record(path)  # a record that does not parse is an error naming it
        seen[key] = rec
        pending.extend((p["run"], p["generation"]) for p in rec["parents"])
    return sorted(seen.items(), key=lambda kv: (kv[0][0] != run, kv[0][0], -kv[0][1]))


def show_generation(run: str, generation: int, root: str | Path = ".") -> str:
    root = Path(root)
    chain = ancestry(run, generation, root)
    head = chain[0][1]
    if not isinstance(head, dict):
        raise LedgerError(f"run {run!r} generation {generation}: no ledger record ({head})")
    share = head["human_share"]
    lines = [
        f"lineage of run {run} generation {generation}",
        f"  human share: direct {share['direct']:.6f} (of its training rows), effective "
        f"{share['effective']:.6f} (of every row on the paths back to the human data)",
        f"  {len(chain)} generation record(s) on its lineage back to the human data",
        "",
    ]
    prev_settings: dict[str, Any] | None = None
    prev_label = ""
    human: dict[str, dict[str, Any]] = {}
    for (r, g), rec in chain:
        if is_root(r):
            label = f"generation 0: root {r} (shared by the runs whose generation 0 it is)"
        else:
            label = f"generation {g}" if r == run else f"run {r} generation {g}"
        if not isinstance(rec, dict):
            lines += [f"{label}  [{rec}]", "  MISSING ledger record", ""]
            continue
        lines.append(f"{label}  [{rel(record_path(r, g, root), root)}]")
        lines.append(f"  record_hash   {rec.get('record_hash')}")
        lines.append(f"  content_hash  {rec['content_hash']}")
        lines.append(
            f"  code          fingerprint {short(rec.get('code_fingerprint'))}, "
            f"commit {code_text(rec['code'])}"
        )
        if prev_settings is None:
            lines.append(f"  settings      {compact(rec['settings'])}")
        else:  # a root records only what generation 0 reads
            ours = root_settings(prev_settings) if is_root(r) else prev_settings
            changes = settings_changes(ours, rec["settings"])
            text = "; ".join(changes) if changes else "unchanged"
            lines.append(f"  settings      {text} (vs {prev_label})")
        prev_settings, prev_label = rec["settings"], label
        lines.append(f"  trained on    {composition_text(rec['composition'])}")
        s = rec["human_share"]
        lines.append(
            f"  human share   direct {s['direct']:.6f}, effective {s['effective']:.6f} "
            f"(mean path {s['path_length']:.4f} rows)"
        )
        for name, a in rec["artifacts"].items():
            lines.append(f"  {name:<18} md5 {a['md5']}  {a['size']} bytes")
        if rec["parents"]:
            parents = [_parent_text(p, r) for p in rec["parents"]]
            lines.append(f"  parents       {', '.join(parents)}")
        else:
            lines.append("  parents       none: trained on human data only")
        human.setdefault(rec["human_data"]["source"], rec["human_data"]["files"])
        lines.append("")
    for source, files in sorted(human.items()):
        lines.append(f"human data {source}")
        for f in files.values():
            lines.append(f"  {f['path']:<40} md5 {f['md5']}  {f['size']} bytes")
    return "\n".join(lines) + "\n"


def _parent_text(parent: dict[str, Any], run: str) -> str:
    if is_root(parent["run"]):
        what = f"generation 0: root {parent['run']}"
    elif parent["run"] != run:
        what = f"generation {parent['generation']} of run {parent['run']}"
    else:
        what = f"generation {parent['generation']}"
    return f"{what} ({short(parent['content_hash'])})"


def show_human(path: str, root: str | Path = ".") -> str:
    root = Path(root)
    lines = [f"human data {path}"]
    used: dict[str, list[int]] = {}
    md5s: set[str] = set()
    for run in ledger_runs(root) + ledger_roots(root):
        for g, p in ledger_records(run, root).items():
            rec = read_record(p)
            for f in rec["human_data"]["files"].values():
                if f["path"] == path:
                    md5s.add(f["md5"])
                    used.setdefault(run, []).append(g)
    for md5 in sorted(md5s):
        lines.append(f"  md5 {md5} (as the ledger records it)")
    if not used:
        lines.append("  no ledger record descends from it")
    for run, gens in sorted(used.items()):
        lines.append(f"  run {run}: generations {ranges(gens)}")
    return "\n".join(lines) + "\n"


def show(target: str, root: str | Path = ".") -> str:
    """The text of ``lineage show TARGET`` (artifact path, ledger path, run or run:gen)."""
    kind, a, b = resolve(target, root)
    if kind == "human":
        return show_human(a, root)  # type: ignore[arg-type]
    return show_generation(a, b, root)  # type: ignore[arg-type]
