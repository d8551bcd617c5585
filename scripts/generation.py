"""One generation step of one run (Snakemake rule `generation`)."""

from modelcollapse.logs import setup_logging
from modelcollapse.pipeline import run_generation

setup_logging(snakemake.log[0])
run_generation(
    snakemake.wildcards.run,
    snakemake.params.generation,
    snakemake.params.settings,
)
