"""results/<run>/figures/ (Snakemake rule `plots`)."""

from modelcollapse.logs import setup_logging
from modelcollapse.plots import plot_run

setup_logging(snakemake.log[0])
plot_run(snakemake.wildcards.run, snakemake.params.settings)
