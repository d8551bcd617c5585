"""A human source's pool and test split (Snakemake rule `prepare_human`)."""

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)

from modelcollapse.config import Params
from modelcollapse.jobs import human_job
from modelcollapse.logs import setup_logging

setup_logging(snakemake.log[0])
human_job(Params.from_dict(snakemake.params.study), snakemake.wildcards.source)
