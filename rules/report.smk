rule report:
    """Regime comparisons per family and the run overview."""
    input:
        metrics=[ancient(p) for p in expand(results_path("metrics.csv"), run=RUNS)],
        ensembles=[ancient(p) for p in expand(results_path("ensemble.csv"), run=RUNS)],
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
