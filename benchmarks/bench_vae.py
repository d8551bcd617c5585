"""VAE family benchmark: prints numbers, asserts nothing (speed is not a test).

    python benchmarks/bench_vae.py [--size default] [--epochs 3] [--n 4000] [--threads 1]

On the mnist_5k training split, measures
1. training throughput (images/s) of the family's ``Model.fit`` (deterministic
   algorithms, seeded minibatches and noise, progress bar) against a plain PyTorch
   loop over the same network (DataLoader, shuffle, no determinism flag);
2. generation throughput (images/s) of ``Model.sample`` (decoder means of z);
3. the time of one generation step of the workflow (``pipeline.run_generation``:
   compose, train ``--step-epochs`` epochs, sample N, annotate, evaluate, write),
   split into its parts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from modelcollapse.config import validate
from modelcollapse.families import get_family
from modelcollapse.human import prepare_human
from modelcollapse.neural import digits
from modelcollapse.neural.vae_model import ConvVAE, negative_elbo
from modelcollapse.pipeline import run_generation

vae = get_family("vae")


def human_pool(n: int) -> np.ndarray:
    images, labels, _ = digits.load_mnist_5k()
    train, _ = digits.stratified_split(labels, 0.2, np.random.default_rng(0))
    return images[train[:n]].astype(np.float32) / 255.0


def plain_loop(x: np.ndarray, model: vae.Model, epochs: int, threads: int) -> float:
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


def generation_step(args: argparse.Namespace) -> None:
    raw = {
        "defaults": {},
        "report": {},
        "human": {"digits": {"family": "vae", "seed": 0, "data": {"source": "mnist_5k"}}},
        "runs": {
            "r": {
                "family": "vae",
                "human": "digits",
                "generations": 2,
                "samples_per_generation": args.n,
                "options": {"size": args.size, "epochs": args.step_epochs, "threads": args.threads},
            }
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            settings = validate(raw).generation_settings("r")
            prepare_human("digits", validate(raw).human["digits"], tmp)
            for g in (0, 1):
                start = time.perf_counter()
                try:
                    run_generation("r", g, settings, tmp)
                except Exception as exc:  # e.g. a ledger that does not know data sources yet
                    print(f"  run_generation failed: {type(exc).__name__}: {exc}")
                    return
                print(f"  generation {g}: {time.perf_counter() - start:.1f} s (whole step)")
        finally:
            os.chdir(cwd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="default", choices=["tiny", "small", "default"])
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the throughput runs")
    parser.add_argument("--step-epochs", type=int, default=20, help="epochs of the step")
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    x = human_pool(args.n)
    frame = vae.image_frame(x)
    model = vae.Model(
        size=args.size, epochs=args.epochs, threads=args.threads, random_state=0, progress=False
    )
    print(f"vae benchmark: size {args.size}, {len(x)} images, {args.threads} threads")
    print(f"  architecture: {model.architecture()}")

    plain = plain_loop(x, model, args.epochs, args.threads)
    start = time.perf_counter()
    model.fit(frame)
    family = args.epochs * len(x) / (time.perf_counter() - start)
    print(f"training: family fit {family:,.0f} images/s, plain loop {plain:,.0f} images/s")

    start = time.perf_counter()
    samples = model.sample(args.n, np.random.default_rng(0))
    sample_rate = args.n / (time.perf_counter() - start)
    start = time.perf_counter()
    vae.annotate_samples(samples, model)
    annotate = time.perf_counter() - start
    print(f"generation: sample {sample_rate:,.0f} images/s; annotate {annotate:.2f} s")

    print(f"one generation step ({args.step_epochs} epochs, N = {args.n}):")
    generation_step(args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
