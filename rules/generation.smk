rule generation:
    """Generation g of a run: compose its training set, train, sample, evaluate, and
    (last) write its ledger record lineage/{run}/gen_{gen}.json. The record is not a
    declared output: Snakemake deletes a failed job's outputs, and a failed rebuild
    must never delete a committed record."""
    input:
        unpack(generation_inputs),
    output:
        train=gen_path("train.json"),
        model=gen_path("model.safetensors"),
        model_json=gen_path("model.json"),
        samples=gen_path("samples.parquet"),
        metrics=gen_path("metrics.json"),
    params:
        study=STUDY,
    conda:
        CONDA_ENV
    log:
        "logs/{run}/gen_{gen}.log",
    threads: job_threads
    priority: job_priority
    resources:
        mem_mb=job_mem_mb,
        runtime=job_runtime,
        gpu=job_gpus,
    shell:
        job_command("generation", "wildcards.run", "wildcards.gen")

