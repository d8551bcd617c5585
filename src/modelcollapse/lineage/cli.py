"""``modelcollapse lineage show|verify|export|summary|diff``: argument parsing and output."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modelcollapse import io
from modelcollapse.lineage.audit import verify
from modelcollapse.lineage.chain import show
from modelcollapse.lineage.graph import FORMATS, export, parse_generations
from modelcollapse.lineage.history import diff, diff_text


def _show(args: argparse.Namespace) -> int:
    sys.stdout.write(show(args.target, args.root))
    return 0


def _verify(args: argparse.Namespace) -> int:
    result = verify(args.runs or None, args.root, files=not args.chain_only, dvc=not args.no_dvc)
    if not result.runs:
        print(f"error: no ledger records under {Path(args.root) / 'lineage'}", file=sys.stderr)
        return 2
    if result.ok:
        print("lineage verified: every check holds")
        print(result.summary())
        return 0
    for p in result.problems:
        print(f"FAIL {p}", file=sys.stderr)
    print(f"lineage verification failed: {len(result.problems)} problem(s)", file=sys.stderr)
    print(result.summary(), file=sys.stderr)
    return 1


def _export(args: argparse.Namespace) -> int:
    runs = [*args.runs, *(args.run or [])] or None
    try:
        window = parse_generations(args.generations) if args.generations else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = export(args.format, runs, args.root, window)
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        io.write_text(args.output, text)
        print(f"wrote {args.output} ({args.format})", file=sys.stderr)
    return 0


def _summary(args: argparse.Namespace) -> int:
    from modelcollapse.lineage.summary import ledger_settings, lineage_summary_text

    known = ledger_settings(args.root)
    unknown = [r for r in args.runs if r not in known]
    if unknown or not known:
        print(f"error: no ledger records for {unknown or 'any run'}", file=sys.stderr)
        return 2
    runs = {r: known[r] for r in args.runs} if args.runs else known
    sys.stdout.write(lineage_summary_text(runs, args.root, full=args.full))
    return 0


def _diff(args: argparse.Namespace) -> int:
    diffs = diff(args.rev, args.runs or None, args.root)
    sys.stdout.write(diff_text(args.rev, diffs))
    changed = any(d.status != "unchanged" for d in diffs)
    return 1 if args.exit_code and changed else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``lineage`` and its subcommands on the top-level subparsers."""
    lineage = sub.add_parser(
        "lineage",
        help="show, verify, export or diff the lineage ledger",
        description="The lineage ledger lineage/<run>/gen_NNNN.json: see docs/lineage.md.",
    )
    cmds = lineage.add_subparsers(dest="lineage_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", default=".", help="workflow root (default: .)")

    p = cmds.add_parser("show", parents=[common], help="a generation's chain back to human data")
    p.add_argument("target", help="artifact path, ledger path, RUN or RUN:GENERATION")
    p.set_defaults(func=_show)

    p = cmds.add_parser(
        "verify",
        parents=[common],
        help="check md5s, the hash chain, derived fields, heads, params.yaml, dvc.lock",
    )
    p.add_argument("runs", nargs="*", help="runs to check (default: every run in the ledger)")
    p.add_argument(
        "--chain-only",
        action="store_true",
        help="skip the artifact files and what derives from them",
    )
    p.add_argument("--no-dvc", action="store_true", help="skip the dvc.lock cross-check")
    p.set_defaults(func=_verify)

    p = cmds.add_parser("export", parents=[common], help="PROV-JSON, mermaid or dot")
    p.add_argument("runs", nargs="*", help="runs to export (default: all)")
    p.add_argument("--run", action="append", metavar="RUN", help="a run to export (repeatable)")
    p.add_argument(
        "--generations",
        metavar="START:STOP",
        help="only these generations, as a Python slice (0:3 is 0, 1 and 2), or one G",
    )
    p.add_argument("--format", "-f", choices=FORMATS, default="prov-json")
    p.add_argument("--output", "-o", help="write to FILE instead of stdout")
    p.set_defaults(func=_export)

    p = cmds.add_parser(
        "summary", parents=[common], help="reports/lineage.md's summary, or every generation"
    )
    p.add_argument("runs", nargs="*", help="runs to summarise (default: every run in the ledger)")
    p.add_argument("--full", action="store_true", help="one row per generation, every hash")
    p.set_defaults(func=_summary)

    p = cmds.add_parser("diff", parents=[common], help="ledger at a git revision vs now")
    p.add_argument("rev", help="git revision, e.g. main or HEAD~1")
    p.add_argument("runs", nargs="*", help="runs to compare (default: all)")
    p.add_argument("--exit-code", action="store_true", help="exit 1 when anything changed")
    p.set_defaults(func=_diff)
