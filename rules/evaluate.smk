rule collect_metrics:
    """One row per generation, `generation` first."""
    input:
        lambda wildcards: generation_files(wildcards.run, "metrics.json"),
    output:
        metrics=results_path("metrics.csv"),
        summary=results_path("summary.json"),
    params:
        generations=lambda wildcards: PARAMS.run(wildcards.run)["generations"],
    conda:
        CONDA_ENV
    log:
        "logs/{run}/collect_metrics.log",
    script:
        "../scripts/collect_metrics.py"


rule ensemble:
    """K independent chains of the run's setting, vectorised in one job."""
    input:
        human=lambda wildcards: human_inputs(wildcards.run)["human"],
    output:
        results_path("ensemble.csv"),
    params:
        settings=lambda wildcards: PARAMS.run(wildcards.run),
    conda:
        CONDA_ENV
    log:
        "logs/{run}/ensemble.log",
    threads: 1
    script:
        "../scripts/ensemble.py"


rule plots:
    input:
        unpack(plot_inputs),
    output:
        directory(results_path("figures")),
    params:
        settings=lambda wildcards: PARAMS.run(wildcards.run),
    conda:
        CONDA_ENV
    log:
        "logs/{run}/plots.log",
    script:
        "../scripts/plots.py"
