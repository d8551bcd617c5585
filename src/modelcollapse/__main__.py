"""Command line: ``python -m modelcollapse <command>`` (also the ``modelcollapse`` script).

Commands: ``validate`` (params.yaml) and ``lineage show|verify|export|diff``.
"""

from __future__ import annotations

import argparse
import sys

from modelcollapse.config import ConfigError, check_prepared_pools, load_params
from modelcollapse.io import ArtifactError


def _validate(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    check_prepared_pools(params)  # data/ lives under the workflow root, the working directory
    for run_id, s in params.runs.items():
        rf = f", real_fraction {s['real_fraction']}" if s["real_fraction"] is not None else ""
        print(
            f"{run_id}: {s['family']} on {s['human']}, {s['regime']}{rf}, "
            f"{s['generations']} generations x {s['samples_per_generation']} samples, "
            f"{s['chains']} chain(s)"
        )
    print(f"{args.params}: {len(params.runs)} runs, {len(params.human)} human sources: valid")
    return 0


def main(argv: list[str] | None = None) -> int:
    from modelcollapse.lineage import cli as lineage_cli

    parser = argparse.ArgumentParser(prog="modelcollapse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("validate", help="check params.yaml and list its runs")
    check.add_argument("params", nargs="?", default="params.yaml")
    check.set_defaults(func=_validate)
    lineage_cli.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ArtifactError as exc:  # a missing or unparsable ledger record or artifact
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
