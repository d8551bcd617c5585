rule report:
    """Regime comparisons per family, the run overview and the lineage summary."""
    input:
        unpack(report_inputs),
    output:
        directory(REPORT_DIR),
    params:
        study=STUDY,
    conda:
        CONDA_ENV
    log:
        "logs/report.log",
    shell:
        job_command("report")
