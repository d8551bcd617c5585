"""reports/ (Snakemake rule `report`, DVC stage `report`)."""

import argparse

from modelcollapse.config import load_params
from modelcollapse.lineage import write_lineage_summary
from modelcollapse.logs import setup_logging
from modelcollapse.report import write_report

if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    write_report(snakemake.params.runs, snakemake.params.compare)
    write_lineage_summary(snakemake.params.runs)  # after: write_report replaces reports/
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    setup_logging()
    params = load_params(args.params)
    write_report(params.runs, params.report.get("compare", {}))
    write_lineage_summary(params.runs)
