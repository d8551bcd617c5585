"""One generation step of one run (Snakemake rule `generation`)."""

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)

from modelcollapse.config import Params
from modelcollapse.jobs import generation_job
from modelcollapse.logs import setup_logging

setup_logging(snakemake.log[0])
generation_job(
    Params.from_dict(snakemake.params.study), snakemake.wildcards.run, snakemake.params.generation
)
