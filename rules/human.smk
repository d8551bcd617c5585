rule prepare_human:
    """A human source's pool and test split (and what its family keeps beside them)."""
    input:
        unpack(human_inputs),
    output:
        directory(HUMAN_DIR),
    params:
        study=STUDY,
    conda:
        CONDA_ENV
    log:
        "logs/human/{source}.log",
    priority: human_priority
    shell:
        job_command("human", "wildcards.source")
