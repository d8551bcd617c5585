"""One generation step of one run (Snakemake rule `generation`)."""

from modelcollapse.logs import setup_logging
from modelcollapse.pipeline import run_generation

setup_logging(snakemake.log[0])  # noqa: F821
run_generation(snakemake.wildcards.run, snakemake.params.generation,  # noqa: F821
               snakemake.params.settings)  # noqa: F821
