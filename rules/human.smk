rule prepare_human:
    """A human source's pool and test split (and what its family keeps beside them)."""
    output:
        directory(HUMAN_DIR),
    params:
        spec=lambda wildcards: PARAMS.human[wildcards.source],
    conda:
        CONDA_ENV
    log:
        "logs/human/{source}.log",
    script:
        "../scripts/prepare_human.py"
