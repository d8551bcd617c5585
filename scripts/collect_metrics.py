"""results/<run>/metrics.csv and summary.json (Snakemake rule `collect_metrics`)."""

from modelcollapse.logs import setup_logging
from modelcollapse.pipeline import collect_metrics

setup_logging(snakemake.log[0])
collect_metrics(snakemake.wildcards.run, snakemake.params.generations)
