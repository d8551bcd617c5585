"""``lineage diff REV``: how the ledger changed between a git revision and the working tree.

For a pull request: which runs and generations were added, removed or changed,
and how (settings, code, packages, data = artifact md5s, composition / human
share, or only the chain, i.e. an ancestor's record hash changed).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelcollapse.lineage.chain import ranges
from modelcollapse.lineage.records import (
    LEDGER_DIR,
    LedgerError,
    ledger_records,
    ledger_roots,
    ledger_runs,
    read_record,
)
from modelcollapse.settings import is_root

ASPECTS = ("settings", "code", "commit", "packages", "data", "composition", "chain")


def _git(root: Path, *args: str, stdin: bytes | None = None) -> bytes:
    try:
        out = subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=root,
            input=stdin,
            capture_output=True,
            check=True,
            timeout=300,
        )
    except subprocess.CalledProcessError as exc:
        raise LedgerError(
            f"git {' '.join(args)} failed: {exc.stderr.decode(errors='replace').strip()}"
        ) from exc
    except OSError as exc:
        raise LedgerError(f"git is not available: {exc}") from exc
    return out.stdout


def ledger_at(rev: str, root: str | Path = ".") -> dict[str, dict[int, dict[str, Any]]]:
    """run -> generation -> record, as the ledger stood at git revision ``rev``."""
    root = Path(root)
    try:
        _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except LedgerError:
        raise LedgerError(f"{rev!r} is not a git revision of the repository at {root}") from None
    listing = _git(root, "ls-tree", "-r", "-z", rev, "--", LEDGER_DIR).decode()
    entries = []
    for line in filter(None, listing.split("\0")):
        meta, path = line.split("\t", 1)
        _, kind, sha = meta.split()
        parts = path.split("/")
        name = parts[-1] if len(parts) >= 3 else ""
        if kind == "blob" and name.startswith("gen_") and name.endswith(".json"):
            try:
                # lineage/<run>/gen_NNNN.json, lineage/roots/<source>/<id>/gen_0000.json
                entries.append(("/".join(parts[1:-1]), int(name[4:-5]), sha, path))
            except ValueError:
                continue
    if not entries:
        return {}
    batch = _git(root, "cat-file", "--batch", stdin="".join(f"{e[2]}\n" for e in entries).encode())
    out: dict[str, dict[int, dict[str, Any]]] = {}
    pos = 0
    for run, gen, _sha, path in entries:
        header_end = batch.index(b"\n", pos)
        size = int(batch[pos:header_end].split()[2])
        body = batch[header_end + 1 : header_end + 1 + size]
        pos = header_end + 1 + size + 1
        try:
            record = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LedgerError(f"ledger record {rev}:{path} does not parse: {exc}") from exc
        if not isinstance(record, dict):
            raise LedgerError(f"ledger record {rev}:{path} does not parse: not a JSON object")
        out.setdefault(run, {})[gen] = record
    return out


def ledger_now(root: str | Path = ".") -> dict[str, dict[int, dict[str, Any]]]:
    """run or root -> generation -> record, as the ledger stands in the working tree."""
    return {
        run: {g: read_record(p) for g, p in ledger_records(run, root).items()}
        for run in ledger_runs(root) + ledger_roots(root)
    }


def _md5s(rec: dict[str, Any]) -> dict[str, str]:
    files = dict(rec.get("artifacts") or {})
    files |= (rec.get("human_data") or {}).get("files") or {}
    return {f["path"]: f["md5"] for f in files.values()}


def record_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two records of one generation, most telling first."""
    out = []
    if old.get("settings") != new.get("settings") or old.get("seed") != new.get("seed"):
        keys = sorted(
            k
            for k in set(old.get("settings") or {}) | set(new.get("settings") or {})
            if (old.get("settings") or {}).get(k) != (new.get("settings") or {}).get(k)
        )
        out.append(f"settings ({', '.join(keys) or 'seed'})")
    if old.get("code_fingerprint") != new.get("code_fingerprint"):
        o, n = old.get("code_fingerprint"), new.get("code_fingerprint")
        out.append(f"code (fingerprint {str(o)[:12]} -> {str(n)[:12]})")
    if old.get("code") != new.get("code"):
        o, n = old.get("code") or {}, new.get("code") or {}
        out.append(f"commit ({str(o.get('commit'))[:12]} -> {str(n.get('commit'))[:12]})")
    if old.get("packages") != new.get("packages"):
        o, n = old.get("packages") or {}, new.get("packages") or {}
        keys = sorted(k for k in set(o) | set(n) if o.get(k) != n.get(k))
        out.append(f"packages ({', '.join(f'{k} {o.get(k)} -> {n.get(k)}' for k in keys)})")
    o, n = _md5s(old), _md5s(new)
    changed = sorted(p.rsplit("/", 1)[-1] for p in set(o) | set(n) if o.get(p) != n.get(p))
    if changed:
        out.append(f"data ({', '.join(changed)})")
    if old.get("composition") != new.get("composition") or old.get("human_share") != new.get(
        "human_share"
    ):
        so = (old.get("human_share") or {}).get("effective")
        sn = (new.get("human_share") or {}).get("effective")
        out.append(f"composition (effective human share {so} -> {sn})")
    if not out and (
        old.get("parents") != new.get("parents")
        or old.get("prev_content_hash") != new.get("prev_content_hash")
    ):
        out.append("chain (an ancestor's record changed)")
    if not out and old != new:
        out.append("record (other fields)")
    return out


@dataclass
class RunDiff:
    run: str
    status: str  # added, removed, changed, unchanged
    added: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    changed: dict[int, list[str]] = field(default_factory=dict)
    generations: int = 0


def diff(rev: str, runs: list[str] | None = None, root: str | Path = ".") -> list[RunDiff]:
    before, after = ledger_at(rev, root), ledger_now(root)
    names = list(runs) if runs else sorted(set(before) | set(after))
    out = []
    for run in names:
        old, new = before.get(run, {}), after.get(run, {})
        # A run's own records start at 1 when its generation 0 is a root's.
        rooted = any(isinstance(rec.get("root"), str) for rec in new.values())
        d = RunDiff(run, "unchanged", generations=len(new) + rooted)
        d.added = sorted(set(new) - set(old))
        d.removed = sorted(set(old) - set(new))
        for g in sorted(set(old) & set(new)):
            if old[g] != new[g]:
                d.changed[g] = record_changes(old[g], new[g])
        if not old and new:
            d.status = "added"
        elif old and not new:
            d.status = "removed"
        elif d.added or d.removed or d.changed:
            d.status = "changed"
        out.append(d)
    return out


def diff_text(rev: str, diffs: list[RunDiff]) -> str:
    lines = [f"lineage diff {rev} -> working tree"]
    for d in diffs:
        # A root (a generation 0 that runs share) is listed as such.
        name = f"root {d.run} (generation 0)" if is_root(d.run) else f"run {d.run}"
        if d.status == "added":
            lines.append(f"{name}: added (generations {ranges(d.added)})")
        elif d.status == "removed":
            lines.append(f"{name}: removed (generations {ranges(d.removed)})")
        elif d.status == "unchanged":
            count = "" if is_root(d.run) else f" ({d.generations} generations)"
            lines.append(f"{name}: unchanged{count}")
        else:
            lines.append(f"{name}: changed")
            if d.added:
                lines.append(f"  added generations {ranges(d.added)}")
            if d.removed:
                lines.append(f"  removed generations {ranges(d.removed)}")
            for g, what in d.changed.items():
                lines.append(f"  generation {g}: {'; '.join(what)}")
    if not diffs:
        lines.append("no ledger at either side")
    return "\n".join(lines) + "\n"
