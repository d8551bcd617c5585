rule collect_metrics:
    """One row per generation, `generation` first; summary.json is the last row."""
    input:
        unpack(metrics_inputs),
    output:
        metrics=results_path("metrics.csv"),
        summary=results_path("summary.json"),
        stamp=results_path(".metrics.build.json"),
    params:
        study=STUDY,
    conda:
        CONDA_ENV
    log:
        "logs/{run}/collect_metrics.log",
    shell:
        job_command("metrics", "wildcards.run")


rule ensemble:
    """K independent chains of the run's setting, vectorised in one job."""
    input:
        unpack(ensemble_inputs),
    output:
        ensemble=results_path("ensemble.csv"),
        stamp=results_path(".ensemble.build.json"),
    params:
        study=STUDY,
    conda:
        CONDA_ENV
    log:
        "logs/{run}/ensemble.log",
    threads: 1
    priority: ensemble_priority
    resources:
        runtime=ensemble_runtime,
    shell:
        job_command("ensemble", "wildcards.run")


rule plots:
    """Every metric against the generation, with theory and the ensemble band; snapshots."""
    input:
        unpack(plot_inputs),
    output:
        directory(results_path("figures")),
    params:
        study=STUDY,
    conda:
        CONDA_ENV
    log:
        "logs/{run}/plots.log",
    shell:
        job_command("figures", "wildcards.run")
