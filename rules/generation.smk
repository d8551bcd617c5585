rule generation:
    """Generation g of a run: compose its training set, train, sample, evaluate."""
    input:
        unpack(generation_inputs),
    output:
        train=GEN_DIR + "/train.json",
        model=GEN_DIR + "/model.safetensors",
        model_json=GEN_DIR + "/model.json",
        samples=GEN_DIR + "/samples.parquet",
        metrics=GEN_DIR + "/metrics.json",
    params:
        settings=lambda wildcards: PARAMS.generation_settings(wildcards.run),
        generation=gen_index,
    log:
        "logs/{run}/gen_{gen}.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/generation.py"
