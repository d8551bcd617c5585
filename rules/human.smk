rule prepare_human:
    output:
        truth=human_path("truth.safetensors"),
        truth_json=human_path("truth.json"),
        pool=human_path("pool.parquet"),
        test=human_path("test.parquet"),
    params:
        spec=lambda wildcards: PARAMS.human[wildcards.source],
    conda:
        CONDA_ENV
    log:
        "logs/human/{source}.log",
    script:
        "../scripts/prepare_human.py"
