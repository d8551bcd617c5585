rule collect_metrics:
    """One row per generation, `generation` first."""
    input:
        lambda wildcards: generation_files(wildcards.run, "metrics.json"),
    output:
        metrics=RESULTS_DIR + "/metrics.csv",
        summary=RESULTS_DIR + "/summary.json",
    params:
        generations=lambda wildcards: PARAMS.run(wildcards.run)["generations"],
    log:
        "logs/{run}/collect_metrics.log",
    script:
        "../scripts/collect_metrics.py"


rule ensemble:
    """K independent chains of the run's setting, vectorised in one job."""
    input:
        truth=lambda wildcards: human_inputs(wildcards.run)["truth"],
    output:
        RESULTS_DIR + "/ensemble.csv",
    params:
        settings=lambda wildcards: PARAMS.run(wildcards.run),
    log:
        "logs/{run}/ensemble.log",
    threads: 1
    script:
        "../scripts/ensemble.py"


rule plots:
    input:
        unpack(plot_inputs),
    output:
        directory(RESULTS_DIR + "/figures"),
    params:
        settings=lambda wildcards: PARAMS.run(wildcards.run),
    log:
        "logs/{run}/plots.log",
    script:
        "../scripts/plots.py"
