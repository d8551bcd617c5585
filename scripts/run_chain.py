"""Every step of one run in one process (DVC stage `run@<id>`).

Calls the same functions as the Snakemake rules, so the artifacts are
byte-identical to `snakemake --cores all`.
"""

import argparse

from tqdm import tqdm

from modelcollapse.config import check_prepared_pools, load_params
from modelcollapse.logs import setup_logging
from modelcollapse.pipeline import collect_metrics, run_ensemble, run_generation
from modelcollapse.plots import plot_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", help="run id in params.yaml")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    setup_logging(f"logs/{args.run}/run_chain.log")
    params = load_params(args.params)
    settings = params.run(args.run)
    check_prepared_pools(params, runs=[args.run])  # before any generation is trained
    gen_settings = params.generation_settings(args.run)
    for g in tqdm(range(settings["generations"]), desc=args.run, unit="gen"):
        run_generation(args.run, g, gen_settings)
    collect_metrics(args.run, settings["generations"])
    run_ensemble(args.run, settings)
    plot_run(args.run, settings)


if __name__ == "__main__":
    main()
