"""reports/: the report, the comparison figures and lineage.md (Snakemake rule `report`)."""

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)

from modelcollapse.config import Params
from modelcollapse.jobs import report_job
from modelcollapse.logs import setup_logging

setup_logging(snakemake.log[0])
report_job(Params.from_dict(snakemake.params.study))
