"""results/<run>/ensemble.csv (Snakemake rule `ensemble`)."""

from modelcollapse.logs import setup_logging
from modelcollapse.pipeline import run_ensemble

setup_logging(snakemake.log[0])
run_ensemble(snakemake.wildcards.run, snakemake.params.settings)
