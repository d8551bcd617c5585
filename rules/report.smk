rule report:
    """Regime comparisons per family, the run overview and the lineage summary."""
    input:
        metrics=[ancient(p) for p in expand(results_path("metrics.csv"), run=RUNS)],
        ensembles=[ancient(p) for p in expand(results_path("ensemble.csv"), run=RUNS)],
        ledger=all_ledger_records(),
    output:
        directory(REPORT_DIR),
    params:
        runs=lambda wildcards: PARAMS.runs,
        compare=lambda wildcards: PARAMS.report.get("compare", {}),
    conda:
        CONDA_ENV
    log:
        "logs/report.log",
    script:
        "../scripts/report.py"
