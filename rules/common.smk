# Helpers shared by the rules. Settings come from modelcollapse.config, which
# validates params.yaml (run, key and value named on error) before any job starts.
import os

from modelcollapse.config import ConfigError, check_prepared_pools, validate as validate_params
from modelcollapse.families import get_family
from modelcollapse.paths import GEN_DIR, HUMAN_DIR, RESULTS_DIR, REPORT_DIR, gen_file

try:
    PARAMS = validate_params(config, source="params.yaml (with --config overrides)")
    check_prepared_pools(PARAMS)  # runs on real data whose source is already prepared
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

RUNS = list(PARAMS.runs)


wildcard_constraints:
    run="|".join(RUNS) if RUNS else "^$",
    source="|".join(PARAMS.human),
    gen=r"\d{4}",


CONDA_ENV = "../environment.yml"
# The git-tracked lineage ledger: one record per generation (modelcollapse.lineage).
LEDGER_RECORD = "lineage/{run}/gen_{gen}.json"


def gen_path(name):
    return os.path.join(GEN_DIR, name)


def results_path(name):
    return os.path.join(RESULTS_DIR, name)


def gen_index(wildcards):
    return int(wildcards.gen)


def run_outputs(run):
    out = RESULTS_DIR.format(run=run)
    return [f"{out}/metrics.csv", f"{out}/summary.json", f"{out}/ensemble.csv", f"{out}/figures"]


def all_targets():
    """Every human source (as `dvc repro` prepares), every run's results, the report."""
    human = [HUMAN_DIR.format(source=source) for source in PARAMS.human]
    return human + [t for run in RUNS for t in run_outputs(run)] + [REPORT_DIR]


def human_inputs(run):
    return {"human": ancient(HUMAN_DIR.format(source=PARAMS.run(run)["human"]))}


def family_of(run):
    return get_family(PARAMS.run(run)["family"])


def job_threads(wildcards):
    """Threads a generation job uses: a family option for the neural families."""
    return int(PARAMS.run(wildcards.run)["options"].get("threads", 1))


def job_mem_mb(wildcards):
    return int(PARAMS.run(wildcards.run)["options"].get("mem_mb", 1000))


def generation_inputs(wildcards):
    """Generation g needs the human source and generation g - 1.

    Inputs are `ancient`: artifacts are deterministic in their settings, so only a
    missing file, changed params/code or a rebuilt ancestor triggers a rerun, never
    mtimes (which `dvc pull` and `git clone` reset in arbitrary order).
    """
    inputs = human_inputs(wildcards.run)
    g = gen_index(wildcards)
    if g > 0:
        inputs["prev_train"] = ancient(str(gen_file(wildcards.run, g - 1, "train.json")))
        inputs["prev_samples"] = ancient(str(gen_file(wildcards.run, g - 1, "samples.parquet")))
        inputs["prev_record"] = ancient(ledger_record(wildcards.run, g - 1))
        if getattr(family_of(wildcards.run), "NEEDS_REFERENCE", False):
            inputs["reference"] = ancient(str(gen_file(wildcards.run, 0, "model.safetensors")))
    return inputs


def ledger_record(run, generation):
    return LEDGER_RECORD.format(run=run, gen=f"{generation:04d}")


def all_ledger_records():
    return [ancient(ledger_record(run, g)) for run in RUNS
            for g in range(PARAMS.run(run)["generations"])]


def generation_files(run, name, generations=None):
    count = PARAMS.run(run)["generations"] if generations is None else generations
    return [ancient(str(gen_file(run, g, name))) for g in range(count)]


def plot_inputs(wildcards):
    settings = PARAMS.run(wildcards.run)
    out = RESULTS_DIR.format(run=wildcards.run)
    return {
        "metrics": ancient(f"{out}/metrics.csv"),
        "ensemble": ancient(f"{out}/ensemble.csv"),
        "snapshots": [ancient(str(gen_file(wildcards.run, g, name)))
                      for g in settings["plot_generations"]
                      for name in ("model.safetensors", "samples.parquet")],
        **human_inputs(wildcards.run),
    }
