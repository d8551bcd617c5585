"""Workflow benchmark: prints numbers, asserts nothing (speed is not a test).

    python benchmarks/bench_workflow.py [--deep 2000] [--chain 30] [--built CHECKOUT]

Measures, on a scratch copy of the workflow:
1. per-generation job overhead: each job's wall time (Snakemake's benchmark file)
   minus the compute the job logs, against the floor of trivial shell jobs that
   import numpy, measured in the same run;
2. no-op `snakemake -n` and `dvc status` (each, and each floor, the median of three
   runs) on a run with ``--deep`` generations, beside
   their floors in the same run: a Snakefile of as many trivial steps in a chain, and
   a DVC repository of one trivial stage, and of one stage whose output directory holds
   as many files as the run's (DVC's own cost of checking them);
3. ensemble throughput (generations x samples x chains per second);
4. storage of an accumulate run against the sum of its unique rows;
5. with ``--built``, a checkout whose study is built (``snakemake --cores all`` done):
   its no-op ``snakemake -n`` (parse and DAG), beside Snakemake's start-up (a one-rule
   Snakefile) and a chain of as many trivial steps as the study has jobs.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from workflow_utils import make_workflow  # noqa: E402

from modelcollapse.config import make_run_settings, validate  # noqa: E402
from modelcollapse.ensemble_step import simulate_ensemble  # noqa: E402
from modelcollapse.families import get_family  # noqa: E402
from modelcollapse.human import prepare_human  # noqa: E402
from modelcollapse.pipeline import run_generation  # noqa: E402


def params_for(runs: dict) -> dict:
    return {
        "human": {
            "g1": {
                "family": "gaussian",
                "truth": {"dim": 1, "mean": 0.0, "std": 1.0},
                "pool_size": 100_000,
                "test_size": 10_000,
                "seed": 1,
            }
        },
        "runs": runs,
        "defaults": {},
        "report": {},
    }


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return elapsed, out.stdout + out.stderr


def timed_median(cmd: list[str], cwd: Path, times: int = 3) -> tuple[float, str]:
    """The median wall time of ``times`` runs of a command that changes nothing (a dry
    run, a status), and the last run's output: one run is at the mercy of the machine."""
    walls, out = [], ""
    for _ in range(times):
        wall, out = timed(cmd, cwd)
        walls.append(wall)
    return statistics.median(walls), out


def in_process(wf: Path, run: str, raw: dict) -> float:
    params = validate(raw)
    prepare_human("g1", params.human["g1"], wf)
    settings = params.run(run)
    start = time.perf_counter()
    for g in range(settings.generations):
        run_generation(run, g, settings, wf)
    return time.perf_counter() - start


# Generation jobs log their compute ("... trained on N rows in 0.012s"): run_generation
# from composing the training set to the ledger record.
_COMPUTE = re.compile(r"trained on \d+ rows in ([0-9.]+)s")
FLOOR_SNAKEFILE = """\
rule all:
    input: expand("out/{i}.txt", i=range(%d))

rule trivial:
    output: "out/{i}.txt"
    benchmark: "bench/{i}.jsonl"
    shell: "python -c 'import numpy' && touch {output}"
"""


def benchmark_seconds(directory: Path) -> list[float]:
    """The wall time (``s``) of every Snakemake ``benchmark:`` file in a directory: JSON
    lines, which keep the full resolution (its TSV files round to 10 ms)."""
    return [
        float(json.loads(path.read_text().splitlines()[0])["s"])
        for path in sorted(directory.glob("*.jsonl"))
    ]


def job_overhead(tmp: Path, gens: int) -> None:
    """Per job: Snakemake's own benchmark file of each generation job (the job's wall
    time) minus the compute the job logs; the floor: trivial shell jobs that import
    numpy, measured the same way in the same run."""
    floor_dir = tmp / "floor"
    floor_dir.mkdir()
    (floor_dir / "Snakefile").write_text(FLOOR_SNAKEFILE % gens)
    timed([sys.executable, "-m", "snakemake", "--cores", "1", "--quiet"], floor_dir)
    floor = benchmark_seconds(floor_dir / "bench")
    runs = {
        "chain": {
            "family": "gaussian",
            "human": "g1",
            "generations": gens,
            "samples_per_generation": 100,
        }
    }
    wf = make_workflow(tmp / "overhead", params_for(runs))
    rules = wf / "rules" / "generation.smk"  # this scratch copy only: add a benchmark file
    text = rules.read_text()
    log = '    log:\n        "logs/{run}/gen_{gen}.log",\n'  # the rule generation's (g >= 1)
    if log not in text:
        raise SystemExit(f"{rules}: the generation rule's log line is not {log!r}")
    rules.write_text(text.replace(log, '    benchmark:\n        "bench/{run}/{gen}.jsonl"\n' + log))
    timed([sys.executable, "-m", "snakemake", "--cores", "1", "data/human/g1"], wf)
    target = f"data/runs/chain/gen_{gens - 1:04d}/metrics.json"
    timed([sys.executable, "-m", "snakemake", "--cores", "1", target], wf)
    walls = benchmark_seconds(wf / "bench" / "chain")
    compute = []
    for g in range(1, gens):  # generation 0 is a root's job (rule root)
        found = _COMPUTE.findall((wf / "logs" / "chain" / f"gen_{g:04d}.log").read_text())
        if not found:
            raise SystemExit(f"generation {g}: no compute time in its log")
        compute.append(float(found[-1]))
    if len(walls) != gens - 1 or len(floor) != gens:
        raise SystemExit(
            f"expected {gens - 1} and {gens} benchmark files, got {len(walls)} and {len(floor)}"
        )
    overhead = [w - c for w, c in zip(walls, compute, strict=True)]
    med = statistics.median
    print(
        f"[overhead] {gens - 1} generation jobs, per job (medians): wall {med(walls):.3f} s, "
        f"compute logged inside {med(compute):.3f} s, overhead {med(overhead):.3f} s "
        f"(target 0.25 s; max {max(overhead):.3f} s)"
    )
    print(
        f"[overhead] floor, {gens} trivial shell jobs importing numpy: {med(floor):.3f} s per "
        f"job; overhead / floor = {med(overhead) / med(floor):.2f} (target at most 2)"
    )


CHAIN_SNAKEFILE = """\
import sys

sys.setrecursionlimit(100_000)
N = %d


rule all:
    input: f"out/{N - 1}.txt"


rule first:
    output: "out/0.txt"
    shell: "touch {output}"


rule step:
    input: lambda w: ancient(f"out/{int(w.i) - 1}.txt")
    output: "out/{i}.txt"
    wildcard_constraints: i=r"[1-9][0-9]*"
    shell: "touch {output}"
"""


def chain_floor(tmp: Path, gens: int) -> float:
    """The peer of the no-op dry run: a Snakefile of ``gens`` trivial steps in a chain,
    every output present, on the same Snakemake."""
    floor = Path(tempfile.mkdtemp(prefix="chain_floor_", dir=tmp))
    (floor / "out").mkdir()
    (floor / "Snakefile").write_text(CHAIN_SNAKEFILE % gens)
    for i in range(gens):
        (floor / "out" / f"{i}.txt").touch()
    wall, out = timed_median([sys.executable, "-m", "snakemake", "--cores", "1", "-n"], floor)
    if "Nothing to be done" not in out:
        raise SystemExit(f"the floor's chain of {gens} steps was not up to date:\n{out[-2000:]}")
    return wall


def dvc_floor(tmp: Path, files: int = 0) -> float:
    """The peer of the no-op dvc status: a DVC repository with one trivial stage, whose
    output is one file or, with ``files``, a directory of that many tiny files (what
    DVC itself spends checking a run directory of that size)."""
    repo = tmp / f"dvc_floor_{files}"
    repo.mkdir()
    if files:
        make = (
            "import os\n"
            f"for i in range({files}):\n"
            "    d = f'out/{i // 5:05d}'\n"
            "    os.makedirs(d, exist_ok=True)\n"
            "    open(f'{d}/{i % 5}', 'w').write(str(i))\n"
        )
        (repo / "make.py").write_text(make)
        stage = f"    cmd: {shlex.quote(sys.executable)} make.py\n    outs: [out]\n"
    else:
        stage = "    cmd: echo one > out.txt\n    outs: [out.txt]\n"
    (repo / "dvc.yaml").write_text("stages:\n  one:\n" + stage)
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=repo, check=True, capture_output=True)
    timed([sys.executable, "-m", "dvc", "repro"], repo)
    wall, out = timed_median([sys.executable, "-m", "dvc", "status"], repo)
    if "up to date" not in out:
        raise SystemExit(f"the floor's dvc status is not clean:\n{out}")
    return wall


def deep_noop(tmp: Path, gens: int) -> None:
    runs = {
        "deep": {
            "family": "gaussian",
            "human": "g1",
            "generations": gens,
            "samples_per_generation": 10,
            "plot_generations": [0, gens - 1],
        }
    }
    wf = make_workflow(tmp / "deep", params_for(runs))
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=wf, check=True, capture_output=True)
    wall, _ = timed([sys.executable, "-m", "dvc", "repro"], wf)
    print(f"[deep] dvc repro of a {gens}-generation run (one process): {wall:.1f} s")
    wall, out = timed_median([sys.executable, "-m", "dvc", "status"], wf)
    if "up to date" not in out:
        raise SystemExit(f"dvc status after dvc repro is not clean:\n{out[-3000:]}")
    files = sum(1 for p in (wf / "data" / "runs" / "deep").rglob("*") if p.is_file())
    print(
        f"[deep] no-op dvc status: {wall:.2f} s (target 1.5 s); floor, dvc status of a "
        f"repository with one trivial stage: {dvc_floor(tmp):.2f} s, of one whose output "
        f"directory holds the run's {files} files: {dvc_floor(tmp, files):.2f} s"
    )
    wall, out = timed_median([sys.executable, "-m", "snakemake", "--cores", "1", "-n"], wf)
    if "Nothing to be done" not in out:
        raise SystemExit(f"a second snakemake -n would run jobs:\n{out[-3000:]}")
    floor = chain_floor(tmp, gens)
    print(
        f"[deep] no-op snakemake -n over {gens} generations: {wall:.2f} s (target 3 s); "
        f"floor, a chain of {gens} trivial steps: {floor:.2f} s"
    )


def built_noop(tmp: Path, checkout: Path) -> None:
    """The no-op dry run of a built study (the default study after `snakemake --cores
    all`: Snakemake's parse and DAG and nothing else) beside its floors, measured now."""
    wall, out = timed_median([sys.executable, "-m", "snakemake", "--cores", "all", "-n"], checkout)
    if "Nothing to be done" not in out:
        raise SystemExit(f"{checkout}: the study is not built (snakemake -n would run jobs)")
    forceall = [sys.executable, "-m", "snakemake", "--cores", "all", "-n", "--forceall"]
    _, out = timed(forceall, checkout)
    found = re.search(r"^total\s+(\d+)$", out, re.MULTILINE)
    if not found:
        raise SystemExit(f"{checkout}: no job count in snakemake -n --forceall:\n{out[-2000:]}")
    jobs = int(found.group(1))
    one = tmp / "one_rule"
    one.mkdir()
    (one / "Snakefile").write_text('rule a:\n    output: "a.txt"\n    shell: "touch {output}"\n')
    (one / "a.txt").touch()
    start, _ = timed_median([sys.executable, "-m", "snakemake", "--cores", "1", "-n"], one)
    print(
        f"[built] no-op snakemake -n of {checkout} ({jobs} jobs): "
        f"{wall:.2f} s (target 1.5 s); floors: Snakemake's start-up "
        f"(a one-rule Snakefile) {start:.2f} s, a chain of {jobs} trivial steps "
        f"{chain_floor(tmp, jobs):.2f} s"
    )


def ensemble_throughput(chains: int, gens: int, n: int) -> None:
    fam = get_family("gaussian")
    assert fam.truth_from_spec is not None
    truth = fam.truth_from_spec({"dim": 1, "mean": 0.0, "std": 1.0})
    for regime in ("replace", "accumulate"):
        settings = make_run_settings(
            "gaussian", regime=regime, generations=gens, samples_per_generation=n, chains=chains
        )
        start = time.perf_counter()
        simulate_ensemble(fam, truth, settings, np.random.default_rng(0))
        wall = time.perf_counter() - start
        print(
            f"[ensemble] gaussian {regime}: {chains} chains x {gens} generations x {n} "
            f"samples in {wall:.2f} s = {chains * gens * n / wall / 1e6:.1f} M "
            "chain-generation-samples/s"
        )


def accumulate_storage(tmp: Path, gens: int, n: int) -> None:
    runs = {
        "acc": {
            "family": "gaussian",
            "human": "g1",
            "generations": gens,
            "samples_per_generation": n,
            "regime": "accumulate",
        }
    }
    raw = params_for(runs)
    wf = make_workflow(tmp / "acc", raw)
    in_process(wf, "acc", raw)
    dirs = [wf / "data/runs/acc", wf / "data" / validate(raw).run("acc").root]  # + gen 0
    stored = sum(p.stat().st_size for d in dirs for p in d.rglob("*") if p.is_file())
    manifests = sum(p.stat().st_size for d in dirs for p in d.rglob("train.json"))
    unique_rows = n * (gens + 1)  # human rows + every generation's samples, each once
    row_bytes = 8  # one float64 data column
    copied_rows = sum((g + 1) * n for g in range(gens))
    print(
        f"[storage] accumulate, {gens} generations x {n} samples: {stored / 1e6:.2f} MB on "
        f"disk ({manifests / 1e3:.1f} kB of manifests); unique rows {unique_rows} "
        f"= {unique_rows * row_bytes / 1e6:.2f} MB raw; copying training sets would store "
        f"{copied_rows} rows = {copied_rows * row_bytes / 1e6:.2f} MB raw"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chain", type=int, default=30, help="generations for overhead")
    parser.add_argument("--deep", type=int, default=2000, help="generations of the deep run")
    parser.add_argument("--chains", type=int, default=1000)
    parser.add_argument(
        "--built", type=Path, help="a checkout whose study is built: time its no-op dry run"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mc-bench-"))
    try:
        if args.built:
            built_noop(tmp, args.built.resolve())
        job_overhead(tmp, args.chain)
        ensemble_throughput(args.chains, 1000, 100)
        accumulate_storage(tmp, 100, 1000)
        deep_noop(tmp, args.deep)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
