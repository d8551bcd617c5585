"""Prepare human data sources (Snakemake rule `prepare_human`, DVC stage `human`)."""

import argparse

from modelcollapse.config import load_params
from modelcollapse.logs import setup_logging
from modelcollapse.pipeline import prepare_human


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("sources", nargs="*", help="source ids (default: all)")
    args = parser.parse_args()
    setup_logging()
    params = load_params(args.params)
    for source in args.sources or params.human:
        prepare_human(source, params.human[source])


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    prepare_human(snakemake.wildcards.source, snakemake.params.spec)
elif __name__ == "__main__":
    main()
