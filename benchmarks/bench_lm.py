"""Throughput of the lm family against a plain PyTorch loop over the same model.

    python benchmarks/bench_lm.py [--size default] [--steps 300] [--rows 1000] [--threads 2]

Prints training and generation throughput (tokens/s) of the family (``Model.fit``,
``Model.sample``: deterministic kernels, KV cache, progress bars, schedules) and of
a bare loop over the same ``GPT`` (AdamW steps; generation that recomputes the
context window for every token, no cache), then the wall time of whole generation
steps (``pipeline.run_generation``: compose, train, sample, score, evaluate, write)
of a replace run on the default corpus. Prints only; writes into a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from modelcollapse.config import validate
from modelcollapse.families import lm
from modelcollapse.human import prepare_human
from modelcollapse.io import read_table
from modelcollapse.neural.transformer import GPT
from modelcollapse.pipeline import run_generation


def params(args: argparse.Namespace) -> dict:
    options = {"size": args.size, "threads": args.threads, "steps": args.steps}
    return {
        "defaults": {},
        "report": {},
        "human": {"plays": {"family": "lm", "data": {"max_train_blocks": 4 * args.rows}}},
        "runs": {
            "bench": {
                "family": "lm",
                "human": "plays",
                "generations": 2,
                "samples_per_generation": args.rows,
                "options": options,
            }
        },
    }


def plain_training(model: lm.Model, rows: np.ndarray, steps: int, batch: int) -> float:
    """tokens/s of a bare AdamW loop over a freshly initialised copy of the model."""
    module = GPT(model.config())
    opt = torch.optim.AdamW(module.parameters(), lr=model.lr)
    data = torch.from_numpy(rows.astype(np.int64))
    gen = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    for _ in range(steps):
        idx = data[torch.randint(len(data), (batch,), generator=gen)]
        loss = module.loss(idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch * (rows.shape[1] - 1) / (time.perf_counter() - started)


@torch.no_grad()
def plain_generation(module: GPT, prompts: np.ndarray, new: int, batch: int) -> float:
    """tokens/s of sampling that re-runs the model over the context window for each token."""
    module.eval()
    gen = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    for start in range(0, len(prompts), batch):
        seq = torch.from_numpy(prompts[start : start + batch].astype(np.int64))
        for _ in range(new):
            logits, _ = module(seq[:, -module.cfg.context :])
            probs = torch.softmax(logits[:, -1], dim=-1)
            seq = torch.cat((seq, torch.multinomial(probs, 1, generator=gen)), dim=1)
    return len(prompts) * new / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="default", choices=sorted(lm.SIZES))
    parser.add_argument("--steps", type=int, default=300, help="training steps per generation")
    parser.add_argument("--rows", type=int, default=1000, help="samples_per_generation")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    settings = validate(params(args)).run("bench")
    with tempfile.TemporaryDirectory(prefix="bench-lm-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        prepare_human("plays", validate(params(args)).human["plays"], root)
        print(f"prepare human data (tokenizer, blocks): {time.perf_counter() - started:.1f}s")
        pool = read_table(root / "data/human/plays/pool.parquet", ["tokens"])
        rows = lm.rows_matrix(pool)[: args.rows]
        truth = lm.load_truth(root / "data/human/plays")
        model = lm.build_model(settings.options, truth, 0, init_seed=0)
        torch.set_num_threads(args.threads)
        print(f"size {args.size}: {GPT(model.config()).num_params():,} parameters, "
              f"{args.threads} threads, batch {model.batch_size}")  # fmt: skip

        # Best of two, alternating: the machine may be shared, and the first run warms up.
        family_train = plain_train = 0.0
        for _ in range(2):
            started = time.perf_counter()
            model.fit(lm.token_frame(rows))
            elapsed = time.perf_counter() - started
            family_train = max(family_train, model.training_["tokens_seen"] / elapsed)
            plain_train = max(
                plain_train, plain_training(model, rows, args.steps, model.batch_size)
            )
        print(f"training   tokens/s: family {family_train:9.0f}   plain loop {plain_train:9.0f}")

        n = min(len(rows), 256)
        started = time.perf_counter()
        model.sample(n, np.random.default_rng(0), prompts=lm.token_frame(rows))
        family_gen = n * model.block_len / (time.perf_counter() - started)
        plain_gen = plain_generation(model.module_, rows[:n], int(model.block_len), 256)
        print(f"generation tokens/s: family {family_gen:9.0f}   plain loop {plain_gen:9.0f} "
              "(no KV cache)")  # fmt: skip
        for strategy in ("greedy", "beam"):
            probe = lm.Model(**{**model.get_params(), "decoding": strategy})
            probe.module_, probe.training_ = model.module_, model.training_
            started = time.perf_counter()
            probe.sample(64, np.random.default_rng(0), prompts=lm.token_frame(rows))
            rate = 64 * model.block_len / (time.perf_counter() - started)
            print(f"generation tokens/s: family {rate:9.0f}   ({strategy}, 64 prompts)")

        for g in range(2):
            started = time.perf_counter()
            run_generation("bench", g, settings, root)
            print(f"generation step {g} (train {args.steps} steps + sample {args.rows} blocks + "
                  f"evaluate): {time.perf_counter() - started:.1f}s")  # fmt: skip


if __name__ == "__main__":
    main()
