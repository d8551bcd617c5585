"""One generation step of one run (Snakemake rule `generation`)."""

from modelcollapse.config import check_prepared_pools, validate
from modelcollapse.logs import setup_logging
from modelcollapse.pipeline import run_generation

setup_logging(snakemake.log[0])
if snakemake.params.generation == 0:
    # A real-data source's pool size is known once prepared: check that the whole run
    # fits it before training anything. (Read from the config, not `params:`, so that
    # extending a run never reruns generation 0.)
    check_prepared_pools(validate(snakemake.config), runs=[snakemake.wildcards.run])
run_generation(
    snakemake.wildcards.run,
    snakemake.params.generation,
    snakemake.params.settings,
)
