rule prepare_human:
    output:
        truth=HUMAN_DIR + "/truth.safetensors",
        truth_json=HUMAN_DIR + "/truth.json",
        pool=HUMAN_DIR + "/pool.parquet",
        test=HUMAN_DIR + "/test.parquet",
    params:
        spec=lambda wildcards: PARAMS.human[wildcards.source],
    log:
        "logs/human/{source}.log",
    script:
        "../scripts/prepare_human.py"
