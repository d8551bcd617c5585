"""results/<run>/metrics.csv and summary.json (Snakemake rule `collect_metrics`)."""

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)

from modelcollapse.config import Params
from modelcollapse.jobs import metrics_job
from modelcollapse.logs import setup_logging

setup_logging(snakemake.log[0])
metrics_job(Params.from_dict(snakemake.params.study), snakemake.wildcards.run)
