# The model-collapse workflow: every run in params.yaml, one job per generation step.
# What reruns when: docs/architecture.md (the planner in modelcollapse.plan decides,
# from the keys the outputs record; rules/common.smk explains how Snakemake is told).
import os
import sys

from snakemake.utils import min_version

min_version("9.0")

# The workflow runs the code of its own checkout (src/), whatever is installed.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))

if workflow.is_main_process:
    # Every job is a short Python process (scripts/job.py) that imports this checkout's
    # modules: compile them once here (only those changed since; a millisecond when
    # none has), or where bytecode is not written (PYTHONDONTWRITEBYTECODE, common in
    # containers) every job would compile them again. README, "Benchmarks".
    import compileall

    for _dir, _depth in (("src", 10), ("scripts", 0)):
        compileall.compile_dir(os.path.join(workflow.basedir, _dir), maxlevels=_depth, quiet=2)

# A generation depends on the one before it; thousands of generations make a DAG
# deeper than Python's default recursion limit allows while Snakemake builds it.
sys.setrecursionlimit(100_000)


# Validated (schema, ids, finite numbers, whole numbers, duplicate keys, the memory
# budget) by rules/common.smk before any job is scheduled: README, "Settings".
configfile: "params.yaml"


include: "rules/common.smk"
include: "rules/human.smk"
include: "rules/generation.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True


onstart:
    take_workflow_lock()


onsuccess:
    record_in_dvc()


onerror:
    record_in_dvc()
