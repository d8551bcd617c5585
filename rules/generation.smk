rule generation:
    """Generation g of a run: compose its training set, train, sample, evaluate."""
    input:
        unpack(generation_inputs),
    output:
        train=gen_path("train.json"),
        model=gen_path("model.safetensors"),
        model_json=gen_path("model.json"),
        samples=gen_path("samples.parquet"),
        metrics=gen_path("metrics.json"),
        lineage=LEDGER_RECORD,
    params:
        settings=lambda wildcards: PARAMS.generation_settings(wildcards.run),
        generation=gen_index,
    conda:
        CONDA_ENV
    log:
        "logs/{run}/gen_{gen}.log",
    threads: job_threads
    resources:
        mem_mb=job_mem_mb,
    script:
        "../scripts/generation.py"
