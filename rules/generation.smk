# Declared outputs: the files other jobs read (the next generation reads samples, the
# metrics table every metrics.json, the figures the snapshots' models). A generation
# also writes its manifest train.json and the model's model.json, and (last) its ledger
# record; the planner (modelcollapse.plan) checks all of them against the key, so a
# missing or stale one reruns the job as a missing declared file would. Declaring
# fewer files is Snakemake's per-job cost: a 2000-generation run is 10,000 declared
# files with all five, 6,000 with these three (README, "Benchmarks").


rule root:
    """Generation 0 of every run that starts from this root (the runs whose generation-0
    settings are equal: README, "Where results land"): trained once on the first N
    human rows, read by each of those runs' generation 1. Its ledger record is
    lineage/roots/{source}/{root}/gen_0000.json (not a declared output, as below)."""
    input:
        unpack(root_inputs),
    output:
        # What other jobs read (the note above); the job writes train.json and
        # model.json beside them.
        model=root_path("model.safetensors"),
        samples=root_path("samples.parquet"),
        metrics=root_path("metrics.json"),
    params:
        study=STUDY,
    conda:
        CONDA_ENV
    log:
        "logs/roots/{source}/{root}.log",
    threads: root_threads
    priority: root_priority
    resources:
        mem_mb=root_mem_mb,
        runtime=root_runtime,
        gpu=root_gpus,
    shell:
        job_command("root", "wildcards.source", "wildcards.root")


rule generation:
    """Generation g >= 1 of a run: compose its training set, train, sample, evaluate,
    and (last) write its ledger record lineage/{run}/gen_{gen}.json. The record is not a
    declared output: Snakemake deletes a failed job's outputs, and a failed rebuild
    must never delete a committed record."""
    wildcard_constraints:
        gen=r"(?!0000)\d{4}",
    input:
        unpack(generation_inputs),
    output:
        # What other jobs read (the note above); the job writes train.json and
        # model.json beside them.
        model=gen_path("model.safetensors"),
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

