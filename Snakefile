# The model-collapse workflow: every run in params.yaml, one job per generation step.
import sys

from snakemake.utils import min_version, validate

min_version("9.0")

# A generation depends on the one before it; thousands of generations make a DAG
# deeper than Python's default recursion limit allows while Snakemake builds it.
sys.setrecursionlimit(100_000)


configfile: "params.yaml"


validate(config, "schemas/params.schema.yaml")


include: "rules/common.smk"
include: "rules/human.smk"
include: "rules/generation.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True
