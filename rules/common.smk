# Helpers shared by the rules.
#
# What is up to date is decided by modelcollapse.plan from what the outputs record
# (each step's key and the content it read), never from modification times: after a
# `git clone` and `dvc pull` files have arbitrary mtimes. A step the planner finds up
# to date therefore declares no inputs when Snakemake builds the DAG to run it (nothing
# it reads will run), and `ancient` ones (Snakemake compares no mtimes) when the DAG is
# built to be shown (--dag, --summary, ...). A step it finds out of date gets one more
# input, a flag file written now (newer than its outputs), which makes Snakemake rerun
# it, and plain inputs, through which a rebuilt upstream step reaches it. The planner
# marks everything downstream of an out-of-date step as well, so one invocation
# rebuilds all of it.
# See docs/architecture.md, "What reruns when".
import contextlib
import dataclasses
import os
import re
import shlex
import sys
import time
from pathlib import Path

from modelcollapse.config import ConfigError, check_prepared_pools, load_params, read_yaml
from modelcollapse.config import validate as validate_params
from modelcollapse.dvcsync import WorkflowLock, WorkflowLocked, commit_to_dvc, is_dvc_repo
from modelcollapse.jobs import write_study
from modelcollapse.keys import Keys
from modelcollapse.paths import (
    GEN_DIR, HUMAN_DIR, RESULTS_DIR, REPORT_DIR, ROOT_GEN_DIR, gen_file, job_of_path
)
from modelcollapse.paths import gen_path as generation_file  # a string (thousands of jobs)
from modelcollapse.plan import Planner, describe
from modelcollapse import scheduling

SETTINGS_SOURCE = "params.yaml (with --config overrides)"
try:
    # Snakemake's own YAML loading keeps the last of two equal keys: read each config
    # file again, strictly, so that a duplicate key is refused as DVC refuses it.
    for _path in workflow.configfiles:
        read_yaml(_path)
    PARAMS = validate_params(config, source=SETTINGS_SOURCE)
    check_prepared_pools(PARAMS)  # runs on real data whose source is already prepared
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

RUNS = list(PARAMS.runs)
# Generation 0 of each set of runs whose generation-0 settings are equal: a root,
# roots/<source>/<root id> -> the runs that start from it (modelcollapse.settings).
ROOTS = PARAMS.roots()
# The validated settings, in a file every job reads (a job need not validate them again).
STUDY = str(write_study(PARAMS))


def job_command(step, *ids):
    """The shell command of a job: scripts/job.py with this checkout's code (no
    Snakemake ``script:`` preamble, which imports Snakemake in every job). Python is the
    one running Snakemake, or the environment's with --use-conda / containers. Ids are
    Snakemake placeholders, quoted (``:q``); run ids are checked (config.check_id) anyway."""
    deployment = workflow.deployment_settings.deployment_method
    python = "python" if deployment else shlex.quote(sys.executable)
    script = shlex.quote(os.path.join(workflow.basedir, "scripts", "job.py"))
    args = " ".join(f"{{{i}:q}}" for i in ids)
    return f"{python} {script} {step} {args} --study {{params.study:q}} --log {{log:q}}"


wildcard_constraints:
    run="|".join(RUNS) if RUNS else "^$",
    source="|".join(PARAMS.human),
    root="|".join(re.escape(r.rsplit("/", 1)[1]) for r in ROOTS) if ROOTS else "^$",
    gen=r"\d{4}",


CONDA_ENV = "../environment.yml"
# Flags that mark a step for rebuild (scratch space; removed once it is up to date).
REBUILD_FLAG = ".modelcollapse/rebuild/{job}"
# Whether any flag is left from an earlier invocation (else none needs removing).
FLAGS_LEFT = any(files for _, _, files in os.walk(os.path.dirname(REBUILD_FLAG)))
RULE_STEPS = {
    "prepare_human": "human",
    "root": "generation",
    "generation": "generation",
    "collect_metrics": "metrics",
    "ensemble": "ensemble",
    "plots": "figures",
    "report": "report",
}


def _forced_by_user():
    """Steps named by --forcerun (rules or files): rebuilt with all they feed."""
    items = set(getattr(getattr(workflow, "dag_settings", None), "forcerun", None) or ())
    steps = {RULE_STEPS[i] for i in items if i in RULE_STEPS}
    jobs = {job_of_path(i) for i in items if i not in RULE_STEPS} - {None}

    def forced(step, name, generation):
        return step in steps or (step, name, generation) in jobs

    return forced


KEYS = Keys(PARAMS)
PLANNER = Planner(PARAMS, keys=KEYS, forced=_forced_by_user())
if workflow.is_main_process:
    # Say what is out of date and why (steps never built are not listed).
    _OUT_OF_DATE = [(label, status) for label, status in PLANNER.out_of_date()
                    if status.rebuild_in_place]
    if _OUT_OF_DATE:
        _LINES = describe(_OUT_OF_DATE)
        print(
            f"modelcollapse: {len(_OUT_OF_DATE)} step(s) out of date, rebuilt where this "
            f"invocation's targets need them:\n{_LINES}",
            file=sys.stderr,
        )


def building_to_run():
    """Whether Snakemake builds this DAG to run it (or dry-run or touch it), not to show
    or act on it whole (--dag, --rulegraph, --summary, --delete-all-output, --archive,
    --report: no executor is chosen for those) nor with --forceall. Asked while the DAG
    is built: the executor is set after the Snakefile is parsed."""
    return getattr(workflow, "executor_plugin", None) is not None and not getattr(
        workflow.dag_settings, "forceall", False
    )


def edges(status, paths):
    """A step's inputs. Plain when it is out of date: a rebuilt input then reruns it in
    the same invocation. When it is up to date, what it reads is up to date and in place
    too (the planner marks everything downstream of an out-of-date or missing step), so
    a DAG built to run declares none: Snakemake then walks only the steps that run and
    the ones they read, not every generation of a built study (docs/architecture.md).
    A DAG built to be shown keeps them, ancient: no modification time can rerun it."""
    if status.fresh and building_to_run():
        return []
    if isinstance(paths, (str, os.PathLike)):
        return ancient(str(paths)) if status.fresh else str(paths)
    return [ancient(str(p)) if status.fresh else str(p) for p in paths]


def rebuild_flag(status, job):
    """The flag input that makes Snakemake rerun a step that is out of date while its
    outputs are in place: written now, it is newer than they are, and its content is
    new each time (Snakemake ignores a newer input whose checksum it has seen)."""
    flag = REBUILD_FLAG.format(job=job)
    if not status.rebuild_in_place:
        if FLAGS_LEFT:  # a flag from an earlier invocation: this step is up to date now
            with contextlib.suppress(FileNotFoundError):
                os.unlink(flag)
        return []
    os.makedirs(os.path.dirname(flag), exist_ok=True)
    Path(flag).write_text(f"{status.state}: {status.reason}\n{time.time_ns()}\n", encoding="utf-8")
    return [flag]


def gen_path(name):
    return os.path.join(GEN_DIR, name)


def root_path(name):
    return os.path.join(ROOT_GEN_DIR, name)


def root_of(wildcards):
    """The root a root job builds, and the settings it is built with (its first run's)."""
    root = f"roots/{wildcards.source}/{wildcards.root}"
    return root, PARAMS.run(ROOTS[root][0])


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


def human_dir_of(run):
    return HUMAN_DIR.format(source=PARAMS.run(run).human)


def human_inputs(wildcards):
    return {"rebuild": rebuild_flag(PLANNER.human(wildcards.source), f"human/{wildcards.source}")}


def job_threads(wildcards):
    """Threads a generation job uses: a family option for the neural families."""
    return PARAMS.run(wildcards.run).threads


def job_priority(wildcards):
    """Longest remaining chain first (scheduling.priority; docs/architecture.md)."""
    return scheduling.priority(PARAMS.run(wildcards.run), int(wildcards.gen))


def human_priority(wildcards):
    return scheduling.human_priority(PARAMS, wildcards.source)


def job_mem_mb(wildcards):
    return PARAMS.run(wildcards.run).mem_mb


# Cluster resources (docs/cluster.md): a time limit from the run's estimated cost, and a
# GPU for a neural run with `device: cuda`. Local runs ignore both.
def job_runtime(wildcards):
    return scheduling.generation_runtime(PARAMS.run(wildcards.run))


def job_gpus(wildcards):
    return scheduling.gpus(PARAMS.run(wildcards.run))


# A root job: what its runs' generation 0 would be given (they share the settings these
# read), at the priority of the longest chain that starts from it.
def root_threads(wildcards):
    return root_of(wildcards)[1].threads


def root_priority(wildcards):
    root, _ = root_of(wildcards)
    return max(scheduling.priority(PARAMS.run(run), 0) for run in ROOTS[root])


def root_mem_mb(wildcards):
    return root_of(wildcards)[1].mem_mb


def root_runtime(wildcards):
    return scheduling.generation_runtime(root_of(wildcards)[1])


def root_gpus(wildcards):
    return scheduling.gpus(root_of(wildcards)[1])


def ensemble_runtime(wildcards):
    return scheduling.ensemble_runtime(PARAMS.run(wildcards.run))


def ensemble_priority(wildcards):
    """A long ensemble starts beside the chains, not after them (scheduling)."""
    return scheduling.ensemble_priority(PARAMS.run(wildcards.run))


def root_inputs(wildcards):
    """A root waits for its human data."""
    root, settings = root_of(wildcards)
    status = PLANNER.root_status(root)
    return {
        "human": edges(status, HUMAN_DIR.format(source=settings.human)),
        "rebuild": rebuild_flag(status, f"root/{wildcards.source}/{wildcards.root}"),
    }


def generation_inputs(wildcards):
    """Generation g (from 1 on) waits for generation g - 1 (generation 1 for the run's
    root): one edge per job. What a generation reads beyond it (the human pool, every
    earlier generation under the accumulate regimes, generation 0's model) is upstream
    of that edge, and the planner marks a generation stale whenever any of it is
    rebuilt, so more edges would order nothing. They would cost: a 2000-generation run
    is 2000 jobs for Snakemake to match, and the accumulate regimes would declare
    G^2 / 2 inputs."""
    run, g = wildcards.run, gen_index(wildcards)
    settings = PARAMS.run(run)
    status = PLANNER.generation(run, g)
    previous = generation_file(settings.chain(run, g - 1), g - 1, "samples.parquet")
    inputs = {"previous": edges(status, previous)}
    inputs["rebuild"] = rebuild_flag(status, f"generation/{run}/{g:04d}")
    return inputs


def step_inputs(step, run, **paths):
    """A stamped step's inputs (``edges``) and its rebuild flag."""
    status = PLANNER.step(step, run)
    inputs = {name: edges(status, p) for name, p in paths.items()}
    inputs["rebuild"] = rebuild_flag(status, f"{step}/{run}" if run else step)
    return inputs


def metrics_inputs(wildcards):
    run = wildcards.run
    settings = PARAMS.run(run)
    metrics = [
        generation_file(settings.chain(run, g), g, "metrics.json")
        for g in range(settings.generations)
    ]
    return step_inputs("metrics", run, metrics=metrics)


def ensemble_inputs(wildcards):
    return step_inputs("ensemble", wildcards.run, human=human_dir_of(wildcards.run))


def plot_inputs(wildcards):
    run = wildcards.run
    out = RESULTS_DIR.format(run=run)
    settings = PARAMS.run(run)
    snapshots = [gen_file(settings.chain(run, g), g, name) for g in settings.plot_generations
                 for name in ("model.safetensors", "samples.parquet")]
    return step_inputs(
        "figures",
        run,
        metrics=f"{out}/metrics.csv",
        ensemble=f"{out}/ensemble.csv",
        snapshots=snapshots,
        human=human_dir_of(run),
    )


def report_inputs(wildcards):
    """The report reads every run's results, lists its figures (index.html links each)
    and, through lineage.md, every ledger record, which the generation jobs write
    before the metrics table is made."""
    return step_inputs(
        "report",
        None,
        metrics=expand(results_path("metrics.csv"), run=RUNS),
        ensembles=expand(results_path("ensemble.csv"), run=RUNS),
        figures=expand(results_path("figures"), run=RUNS),
    )


# -- Snakemake and DVC in one directory ---------------------------------------------

LOCK = WorkflowLock()


def take_workflow_lock():
    """Hold DVC's repository lock while jobs run: `dvc repro` cannot start meanwhile."""
    if is_dvc_repo():
        try:
            LOCK.acquire()
        except WorkflowLocked as exc:
            raise WorkflowError(str(exc)) from None


def record_in_dvc():
    """Commit what this run left complete and up to date to dvc.lock and the DVC cache,
    so that `dvc status` is clean and `dvc push` sends it."""
    if not LOCK.held:
        return
    LOCK.release()
    try:
        on_disk = load_params("params.yaml")
    except ConfigError:
        on_disk = None
    # limits (what a job may hold) are not settings of any result, and DVC ignores them.
    if on_disk is None or dataclasses.replace(on_disk, limits=PARAMS.limits) != PARAMS:
        print(
            "modelcollapse: dvc.lock not updated: this run's settings differ from params.yaml "
            "(--config or --configfile), and DVC knows only params.yaml.",
            file=sys.stderr,
        )
        return
    try:
        committed, left = commit_to_dvc(PARAMS)
    except RuntimeError as exc:
        print(f"modelcollapse: WARNING: dvc.lock not updated: {exc}", file=sys.stderr)
        return
    listed = 24  # every stage a small change commits; a first run's are counted
    names = ", ".join(committed[:listed])
    names += f" and {len(committed) - listed} more" if len(committed) > listed else ""
    print(f"modelcollapse: dvc.lock: committed {len(committed)} stage(s): {names}", file=sys.stderr)
    if left:
        shown = "; ".join(f"{stage} ({why})" for stage, why in list(left.items())[:5])
        more = f" and {len(left) - 5} more" if len(left) > 5 else ""
        print(
            f"modelcollapse: dvc.lock: {len(left)} stage(s) not up to date, not committed: "
            f"{shown}{more}",
            file=sys.stderr,
        )

