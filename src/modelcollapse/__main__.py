"""Command line: ``python -m modelcollapse <command>`` (also the ``modelcollapse`` script).

Commands: ``validate`` (params.yaml), ``status`` (what is out of date, and why),
``stage`` (one DVC stage of dvc.yaml) and ``lineage show|verify|export|diff``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from modelcollapse.config import ConfigError, check_prepared_pools, load_params
from modelcollapse.io import ArtifactError


def _validate(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    check_prepared_pools(params)  # data/ lives under the workflow root, the working directory
    replicate_of = {r: b for b, rs in params.report.get("replicates", {}).items() for r in rs}
    for run_id, s in params.runs.items():
        rf = f", real_fraction {s.real_fraction}" if s.real_fraction is not None else ""
        base = replicate_of.get(run_id)
        seed = f", seed {s.seed} (a replicate of {base})" if base else f", seed {s.seed}"
        print(
            f"{run_id}: {s.family} on {s.human}, {s.regime}{rf}, "
            f"{s.generations} generations x {s.samples_per_generation} samples, "
            f"{s.chains} chain(s){seed}"
        )
    roots = params.roots()
    shared = {root: runs for root, runs in roots.items() if len(runs) > 1}
    for root, runs in shared.items():
        print(f"{root}: generation 0 of {', '.join(runs)} (trained once)")
    print(
        f"{args.params}: {len(params.runs)} runs ({len(roots)} distinct generations 0), "
        f"{len(params.human)} human sources: valid"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    from modelcollapse.plan import Planner, describe

    params = load_params(args.params)
    out_of_date = Planner(params).out_of_date()
    if not out_of_date:
        print(f"{args.params}: every step is up to date")
        return 0
    print(f"{args.params}: {len(out_of_date)} step(s) out of date:")
    print(describe(out_of_date))
    return 1 if args.exit_code else 0


def _stage(args: argparse.Namespace) -> int:
    from modelcollapse.jobs import STAGES
    from modelcollapse.logs import setup_logging

    job, what, log_file = STAGES[args.name]
    if what is not None and args.id is None:
        args.id = _id_from_dvc(args.name, what)
    if (what is None) != (args.id is None):
        raise ConfigError(
            f"stage {args.name!r} " + (f"takes a {what} id" if what else "takes no argument")
        )
    params = load_params(args.params)  # every id in it is safe (config.check_id)
    if what is not None:
        known = params.human if what == "source" else params.runs
        if args.id not in known:
            raise ConfigError(f"stage {args.name}: unknown {what} {args.id!r} in {args.params}")
    setup_logging(log_file.format(name=args.id))
    if what is None:
        job(params)
    else:
        job(params, args.id)
    return 0


def _id_from_dvc(name: str, what: str) -> str | None:
    """The id of a ``foreach`` stage DVC runs, from ``DVC_STAGE`` (``<name>@<id>``).

    dvc.yaml's commands hold no id: DVC substitutes ``${key}`` into the shell command
    before anything could check it, so a run id from params.yaml would reach the shell.
    """
    stage = os.environ.get("DVC_STAGE")
    if stage is None:
        return None
    stage_name, sep, id_ = stage.rpartition(":")[2].partition("@")
    if stage_name != name or not sep:
        raise ConfigError(f"stage {name}: DVC_STAGE is {stage!r}, not {name}@<{what} id>")
    return id_


_REEXEC = "MODELCOLLAPSE_CHECKOUT"


def _use_this_checkout() -> None:
    """Run the code of the workflow in the working directory, as its Snakefile and
    scripts do: with one environment shared by several clones, the installed package
    may be another clone's, whose fingerprints would not describe this one's code."""
    src = Path.cwd() / "src"
    here = Path(__file__).resolve().parent
    if os.environ.get(_REEXEC) or not (src / "modelcollapse" / "__init__.py").is_file():
        return
    if (src / "modelcollapse").resolve() == here:
        return
    env = {**os.environ, _REEXEC: "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    os.execve(sys.executable, [sys.executable, "-m", "modelcollapse", *sys.argv[1:]], env)


def main(argv: list[str] | None = None) -> int:
    from modelcollapse.lineage import cli as lineage_cli

    if argv is None:
        _use_this_checkout()

    parser = argparse.ArgumentParser(prog="modelcollapse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("validate", help="check params.yaml and list its runs")
    check.add_argument("params", nargs="?", default="params.yaml")
    check.set_defaults(func=_validate)
    status = sub.add_parser("status", help="which steps are out of date, and why")
    status.add_argument("--params", default="params.yaml")
    status.add_argument("--exit-code", action="store_true", help="exit 1 when any is")
    status.set_defaults(func=_status)
    stage = sub.add_parser("stage", help="run one stage of dvc.yaml (what `dvc repro` calls)")
    stage.add_argument(
        "name", choices=["keys", "human", "roots", "chain", "ensemble", "figures", "report"]
    )
    stage.add_argument("id", nargs="?", help="the human source or run the stage builds")
    stage.add_argument("--params", default="params.yaml")
    stage.set_defaults(func=_stage)
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
