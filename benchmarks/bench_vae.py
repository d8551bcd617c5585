"""VAE family benchmark: prints numbers, asserts nothing (speed is not a test).

    python benchmarks/bench_vae.py [--size default] [--epochs 3] [--step-epochs 20]
        [--n 4000] [--threads 1] [--steps 1]

On the mnist_5k training split, measures, each figure beside a floor measured in the
same run:

1. training throughput (images/s) of the family's ``Model.fit`` (deterministic
   algorithms, seeded minibatches and noise, progress bar) against a plain PyTorch
   loop over the same network (DataLoader, shuffle, no determinism flag);
2. sampling throughput of ``Model.sample`` (decoder means of z) against a bare
   decoder pass, and ``annotate_samples`` against bare encoder and ELBO passes
   (floors: an untrained network of the same architecture, ``torch.no_grad``);
3. one generation step of the workflow (``pipeline.run_generation``: compose, train
   ``--step-epochs`` epochs, sample N, annotate, evaluate, write), split into its
   parts. The split is taken inside the real call: timers wrap the functions
   ``run_generation`` calls (the family's members, the model's methods, the
   ``io`` writers and readers, the manifest and ledger functions) while it runs; a
   timed call inside another timed call counts in the outer one, and what no timer
   covers is printed as the rest. Floors: training at the plain loop's rate of part
   1, sampling and the forward passes of annotate and evaluate at the bare rates of
   part 2, each written file's bytes written raw.

A measurement that raises is reported (traceback on stderr) and the others still run;
the script then exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from modelcollapse import io, pipeline
from modelcollapse.config import validate
from modelcollapse.families import get_family
from modelcollapse.human import prepare_human
from modelcollapse.neural import digits
from modelcollapse.neural.vae_model import ConvVAE, negative_elbo

FAMILY = get_family("vae")
BATCH = 500  # images per bare forward pass (the package's evaluation batches are 500)


def human_pool(n: int) -> np.ndarray:
    images, labels, _ = digits.load_mnist_5k()
    train, _ = digits.stratified_split(labels, 0.2, np.random.default_rng(0))
    return images[train[:n]].astype(np.float32) / 255.0


def rate(count: float, seconds: float) -> str:
    return f"{count / seconds:,.0f} images/s"


# --- part 1: training --------------------------------------------------------------------


def plain_loop(x: np.ndarray, model: Any, epochs: int, threads: int) -> float:
    """Images/s of a textbook loop over the same architecture."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = ConvVAE(**model.architecture())
    loader = DataLoader(
        TensorDataset(torch.from_numpy(x).reshape(-1, 1, 28, 28)),
        batch_size=model.batch_size,
        shuffle=True,
    )
    opt = torch.optim.Adam(net.parameters(), lr=model.lr)
    net.train()
    start = time.perf_counter()
    for _ in range(epochs):
        for (xb,) in loader:
            eps = torch.randn(xb.shape[0], net.latent_dim)
            logits, mu, logvar = net(xb, eps)
            loss = negative_elbo(logits, xb, mu, logvar).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return epochs * len(x) / (time.perf_counter() - start)


def family_fit(x: np.ndarray, model: Any, epochs: int) -> float:
    start = time.perf_counter()
    model.fit(digits.image_frame(x))
    return epochs * len(x) / (time.perf_counter() - start)


# --- part 2: sampling, annotation and their bare floors -----------------------------------


def bare_rates(x: np.ndarray, model: Any, threads: int) -> dict[str, float]:
    """Images/s of bare no-grad passes over an untrained net of the same architecture:
    ``decode`` (sigmoid of the decoder's logits), ``encode`` (posterior means) and
    ``elbo`` (encode, one z, decode, negative ELBO)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = ConvVAE(**model.architecture()).eval()
    images = torch.from_numpy(x).reshape(-1, 1, 28, 28)
    z = torch.randn(len(x), net.latent_dim)

    def elbo(xb: torch.Tensor) -> torch.Tensor:
        mu, logvar = net.encode(xb)
        eps = torch.randn(mu.shape)
        return negative_elbo(net.decode_logits(mu + torch.exp(0.5 * logvar) * eps), xb, mu, logvar)

    passes: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]] = {
        "decode": (lambda zb: torch.sigmoid(net.decode_logits(zb)), z),
        "encode": (lambda xb: net.encode(xb)[0], images),
        "elbo": (elbo, images),
    }
    out = {}
    with torch.no_grad():
        for name, (fn, data) in passes.items():
            start = time.perf_counter()
            for i in range(0, len(data), BATCH):
                fn(data[i : i + BATCH])
            out[name] = len(data) / (time.perf_counter() - start)
    return out


def sample_and_annotate(model: Any, n: int, bare: dict[str, float] | None) -> None:
    start = time.perf_counter()
    samples = model.sample(n, np.random.default_rng(0))
    seconds = time.perf_counter() - start
    floor = f"bare decoder pass {bare['decode']:,.0f} images/s" if bare else "no floor (failed)"
    print(f"sampling: Model.sample {rate(n, seconds)}, {floor}")
    start = time.perf_counter()
    FAMILY.annotate_samples(samples, model)
    seconds = time.perf_counter() - start
    floor = (
        f"bare encoder + ELBO passes {n / bare['encode'] + n / bare['elbo']:.2f} s"
        if bare
        else "no floor (failed)"
    )
    print(f"annotate_samples: {seconds:.2f} s for {n} images, {floor}")


# --- part 3: one generation step, split -------------------------------------------------


class StepTimer:
    """Seconds per part of one ``run_generation`` call, from wrappers around the
    functions it calls. Only the outermost timed call counts: a timed function called
    by another timed function is part of the caller's time."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}  # in order of first call
        self.info: dict[str, dict[str, Any]] = {}  # what a part's floor needs
        self._active = False

    def wrap(
        self,
        label: str | Callable[[tuple], str],
        fn: Callable[..., Any],
        note: Callable[[tuple], dict[str, Any]] | None = None,
    ) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._active:
                return fn(*args, **kwargs)
            self._active = True
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - start
                self._active = False
                name = label(args) if callable(label) else label
                self.parts[name] = self.parts.get(name, 0.0) + seconds
                if note is not None:
                    self.info.setdefault(name, {}).update(note(args))

        return timed


_MISSING = object()


@contextlib.contextmanager
def patched(targets: list[tuple[Any, str, Any]]) -> Iterator[None]:
    """Set ``owner.attr = value`` for each target (a module or a class), then restore."""
    saved = []
    try:
        for owner, attr, value in targets:
            saved.append((owner, attr, vars(owner).get(attr, _MISSING)))
            setattr(owner, attr, value)
        yield
    finally:
        for owner, attr, old in reversed(saved):
            if old is _MISSING:
                delattr(owner, attr)
            else:
                setattr(owner, attr, old)


def _files(kind: str, i: int = 0) -> Callable[[tuple], dict[str, Any]]:
    """A note for the part's floor: it does ``kind`` ("read", "write" or "md5") to the
    file ``args[i]`` (and, for a checkpoint, to its ``.json`` too)."""

    def note(args: tuple) -> dict[str, Any]:
        path = Path(args[i])
        files = [path, io.checkpoint_json_path(path)] if path.suffix == ".safetensors" else [path]
        return {"files": files, "io": kind}

    return note


def _named(verb: str) -> Callable[[tuple], str]:
    return lambda args: f"{verb} {Path(args[0]).name}"


def timers(timer: StepTimer) -> list[tuple[Any, str, Any]]:
    """What to wrap while ``run_generation`` runs (names it no longer uses are skipped:
    their time shows in the rest)."""
    model = FAMILY.model
    by_name = {
        "compose_training_set": "compose training set",
        "load_training_set": "compose training set",
        "composition": "compose training set",
        "load_truth": "load truth (human dir)",
        "record_generation": "ledger record",
    }
    targets: list[tuple[Any, str, Any]] = [
        (pipeline, name, timer.wrap(label, getattr(pipeline, name)))
        for name, label in by_name.items()
        if callable(getattr(pipeline, name, None))
    ]
    if callable(getattr(pipeline, "cached_md5", None)):
        wrapped = timer.wrap(_named("md5 of"), pipeline.cached_md5, _files("md5"))
        targets.append((pipeline, "cached_md5", wrapped))
    for name, verb in (("read_table", "read"), ("write_json", "write"), ("write_table", "write")):
        wrapped = timer.wrap(_named(verb), getattr(io, name), _files(verb))
        targets.append((io, name, wrapped))
    targets += [
        (
            model,
            "fit",
            timer.wrap(
                "train: Model.fit",
                model.fit,
                lambda a: {"rows": len(a[1]), "epochs": int(a[0].epochs)},
            ),
        ),
        (
            model,
            "save",
            timer.wrap(
                "write model: Model.save",
                model.save,
                _files("write", 1),
            ),
        ),
        (model, "sample", timer.wrap("sample: Model.sample", model.sample, lambda a: {"n": a[1]})),
        (
            model,
            "load",
            staticmethod(timer.wrap("load generation-0 model", model.load, _files("read"))),
        ),
    ]
    family = FAMILY
    if dataclasses.is_dataclass(FAMILY):
        family = dataclasses.replace(
            FAMILY,
            build_model=timer.wrap("build model", FAMILY.build_model),
            annotate_samples=timer.wrap(
                "annotate: annotate_samples", FAMILY.annotate_samples, lambda a: {"n": len(a[0])}
            ),
            evaluate=timer.wrap(
                "evaluate",
                FAMILY.evaluate,
                lambda a: {"test": len(a[2]), "pool": len(a[1].pool_pixels)},
            ),
        )
    targets.append((pipeline, "get_family", lambda name: family))
    return targets


def raw_io(kind: str, files: list[Path], scratch: Path) -> float:
    """Seconds to do the same with the same bytes, plainly: ``write_bytes`` of each
    file's bytes, ``read_bytes`` of each file, or ``hashlib.md5`` of its bytes."""
    total = 0.0
    for i, path in enumerate(files):
        data = path.read_bytes()
        start = time.perf_counter()
        if kind == "write":
            (scratch / f"raw{i}").write_bytes(data)
        elif kind == "read":
            path.read_bytes()
        else:
            hashlib.md5(data).hexdigest()
        total += time.perf_counter() - start
    return total


def floor_of(
    name: str, info: dict[str, Any], floors: dict[str, Any], scratch: Path
) -> tuple[float, str] | None:
    """A part's floor (seconds, what it is), measured in this run, or None."""
    if "files" in info:
        files = [f for f in info["files"] if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        what = {"write": "write_bytes", "read": "read_bytes", "md5": "hashlib.md5"}[info["io"]]
        size_text = f"{size / 1e6:.2f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"
        return raw_io(info["io"], files, scratch), f"plain {what} of its {size_text}"
    if name.startswith("train") and "plain" in floors:
        rows, epochs = info["rows"], info["epochs"]
        what = f"plain loop at {floors['plain']:,.0f} images/s x {rows} rows x {epochs} epochs"
        return rows * epochs / floors["plain"], what
    bare = floors.get("bare")
    if bare is None:
        return None
    if name.startswith("sample"):
        return info["n"] / bare["decode"], f"bare decoder pass over {info['n']}"
    if name.startswith("annotate"):
        n = info["n"]
        return n / bare["encode"] + n / bare["elbo"], f"bare encoder + ELBO passes over {n}"
    if name == "evaluate":
        test, pool = info["test"], info["pool"]
        seconds = test / bare["encode"] + test / bare["elbo"] + pool / bare["encode"]
        return seconds, f"its bare passes (encode + ELBO of {test} test, encode of {pool} pool)"
    return None


def print_split(
    generation: int, whole: float, timer: StepTimer, floors: dict[str, Any], scratch: Path
) -> None:
    print(f"  generation {generation}: {whole:.2f} s, the whole run_generation call")
    print(f"    {'part':<34} {'s':>7} {'share':>6}  {'floor s':>7}  floor, measured in this run")
    for name, seconds in timer.parts.items():
        found = floor_of(name, timer.info.get(name, {}), floors, scratch)
        floor, what = found if found else (None, "none: its share of the step only")
        text = f"{floor:7.3f}" if floor is not None else f"{'-':>7}"
        print(f"    {name:<34} {seconds:7.3f} {seconds / whole:6.1%}  {text}  {what}")
    rest = whole - sum(timer.parts.values())
    print(f"    {'rest (no timer)':<34} {rest:7.3f} {rest / whole:6.1%}  {'-':>7}  -")


def generation_steps(args: argparse.Namespace, floors: dict[str, Any]) -> None:
    raw = {
        "defaults": {},
        "report": {},
        "human": {"digits": {"family": "vae", "seed": 0, "data": {"source": "mnist_5k"}}},
        "runs": {
            "r": {
                "family": "vae",
                "human": "digits",
                "generations": max(args.steps, 1),
                "samples_per_generation": args.n,
                "options": {"size": args.size, "epochs": args.step_epochs, "threads": args.threads},
            }
        },
    }
    print(
        f"one generation step ({args.step_epochs} epochs, N = {args.n}), split by timers "
        "around what run_generation calls (a timed call inside another counts in the outer):"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            params = validate(raw)
            settings = params.run("r")
            prepare_human("digits", params.human["digits"], tmp)
            scratch = Path(tmp, "raw")
            scratch.mkdir()
            for g in range(args.steps):
                timer = StepTimer()
                start = time.perf_counter()
                try:
                    with patched(timers(timer)):
                        pipeline.run_generation("r", g, settings, tmp)
                finally:  # a failing step still shows where its time went
                    print_split(g, time.perf_counter() - start, timer, floors, scratch)
        finally:
            os.chdir(cwd)


# --- main ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="default", choices=["tiny", "small", "default"])
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the throughput runs")
    parser.add_argument("--step-epochs", type=int, default=20, help="epochs of the step")
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--steps", type=int, default=1, help="generation steps to split (0, then 1, ...)"
    )
    args = parser.parse_args()

    failed: list[str] = []

    def attempt(what: str, fn: Callable[..., Any], *fn_args: Any) -> Any:
        try:
            return fn(*fn_args)
        except Exception as exc:
            sys.stdout.flush()
            traceback.print_exc()
            sys.stderr.flush()
            print(f"FAILED {what}: {type(exc).__name__}: {exc}", flush=True)
            failed.append(what)
            return None

    x = attempt("loading the mnist_5k digits", human_pool, args.n)
    model = FAMILY.model(
        size=args.size, epochs=args.epochs, threads=args.threads, random_state=0, progress=False
    )
    floors: dict[str, Any] = {}
    if x is not None:
        print(f"vae benchmark: size {args.size}, {len(x)} images, {args.threads} threads")
        print(f"  architecture: {attempt('the architecture', model.architecture)}")
        plain = attempt("the plain loop", plain_loop, x, model, args.epochs, args.threads)
        family = attempt("Model.fit", family_fit, x, model, args.epochs)
        if plain is not None:
            floors["plain"] = plain
        print(
            "training: family fit "
            + (f"{family:,.0f} images/s" if family is not None else "FAILED")
            + ", plain loop "
            + (f"{plain:,.0f} images/s" if plain is not None else "FAILED")
        )
        bare = attempt("the bare passes", bare_rates, x, model, args.threads)
        if bare is not None:
            floors["bare"] = bare
        if family is not None:
            attempt("sampling and annotation", sample_and_annotate, model, args.n, bare)
    attempt("the generation step", generation_steps, args, floors)
    if failed:
        print(f"FAILED: {len(failed)} measurement(s): {'; '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
