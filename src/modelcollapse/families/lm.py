"""Language model (Shumailov et al.'s OPT-125m on wikitext-2, scaled to a CPU).

A small decoder-only transformer (:mod:`modelcollapse.neural.transformer`) on
real text: Shakespeare's plays by default, or any directory of ``.txt`` files
(:mod:`modelcollapse.neural.text`). A row is one block of ``block_len`` tokens
(column ``tokens``). The protocol is the paper's: every generation starts from
the same initialisation (``SAME_INIT``); each of the first N human blocks is a
prompt and the model writes the next ``block_len`` tokens, which are the
generation's synthetic rows (``NEEDS_PROMPTS``); the generation-0 model scores
every generation's samples (``NEEDS_REFERENCE``). docs/lm.md has the details.

``score`` is the per-row log-likelihood in nats: the sum of ``log p(t_i | t_<i)``
over tokens 2..L of the row (the first token has no context and is not scored).
Perplexities are ``exp(-sum / count)`` over the scored tokens.

Torch is imported lazily, so validating params.yaml (which imports every
family) does not pay for it.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from modelcollapse import io
from modelcollapse.families.base import Estimator
from modelcollapse.io import ArtifactError
from modelcollapse.neural import text
from modelcollapse.neural.text import Corpus, rows_matrix, token_frame

NAME = "lm"
SAME_INIT = True
NEEDS_PROMPTS = True
NEEDS_REFERENCE = True

RARE_MASS = 0.1  # rare tokens: the rarest ones making up 10% of human training tokens
LOG_METRICS = ("test_perplexity", "ref_perplexity_mean", "ref_perplexity_median",
               "ref_perplexity_p95")  # fmt: skip
REPETITION_N = 4  # repetition_rate counts repeated 4-grams within a row
SIZES = {  # n_layer, n_head, n_embd
    "tiny": (2, 2, 64),
    "default": (4, 4, 128),
    "large": (8, 8, 512),
}
NOT_MODEL_OPTIONS = ("mem_mb",)  # options for the scheduler only

log = logging.getLogger("modelcollapse")


def _progress(iterable, **kwargs):
    from tqdm import tqdm

    return tqdm(iterable, file=sys.stderr, mininterval=2.0, leave=False, **kwargs)


def lr_scale(step: int, steps: int) -> float:
    """Linear warm-up over the first 10% of steps, then cosine decay from 1 to 0.1."""
    warmup = max(1, steps // 10)
    if step < warmup:
        return (step + 1) / warmup
    return 0.55 + 0.45 * math.cos(math.pi * (step - warmup) / max(1, steps - warmup))


class Model(Estimator):
    """Decoder-only transformer; ``module_`` (a ``GPT``) and ``training_`` once fitted."""

    family = NAME
    _param_names = (
        "size", "n_layer", "n_head", "n_embd", "dropout", "steps", "epochs", "batch_size",
        "lr", "weight_decay", "decoding", "temperature", "top_k", "top_p", "num_beams",
        "repetition_penalty", "max_new_tokens", "generation_batch_size", "threads", "device",
        "vocab_size", "block_len", "tokenizer_md5", "init_seed", "random_state",
    )  # fmt: skip
    _state_names = ("module_",)

    def __init__(
        self,
        *,
        size: str = "default",
        n_layer: int | None = None,
        n_head: int | None = None,
        n_embd: int | None = None,
        dropout: float = 0.1,
        steps: int | None = 300,
        epochs: float | None = None,
        batch_size: int = 32,
        lr: float = 0.002,
        weight_decay: float = 0.1,
        decoding: str = "sample",
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = 0.8,
        num_beams: int = 5,
        repetition_penalty: float = 1.0,
        max_new_tokens: int | None = None,
        generation_batch_size: int = 256,
        threads: int = 2,
        device: str = "cpu",
        vocab_size: int = 2048,
        block_len: int = 64,
        tokenizer_md5: str | None = None,
        init_seed: int | None = None,
        random_state: int | None = None,
    ) -> None:
        params = dict(locals())
        del params["self"]
        for name, value in params.items():
            setattr(self, name, value)

    # --- architecture and training ---------------------------------------------

    def config(self):
        from modelcollapse.neural.transformer import GPTConfig

        n_layer, n_head, n_embd = SIZES[self.size]
        return GPTConfig(
            vocab_size=int(self.vocab_size),
            context=int(self.block_len) - 1,
            n_layer=int(self.n_layer or n_layer),
            n_head=int(self.n_head or n_head),
            n_embd=int(self.n_embd or n_embd),
            dropout=float(self.dropout),
        )

    def _new_module(self):
        import torch

        from modelcollapse.neural.transformer import GPT

        seed = self.init_seed if self.init_seed is not None else self.random_state
        torch.manual_seed(int(seed or 0))
        return GPT(self.config())

    def _num_steps(self, rows: int) -> int:
        if self.steps is not None:
            return int(self.steps)
        if self.epochs is None:
            raise ValueError("lm options: set steps or epochs")
        return max(1, math.ceil(float(self.epochs) * rows / int(self.batch_size)))

    def fit(self, data: pd.DataFrame) -> Self:
        """AdamW (betas 0.9/0.95, decay on matrices), linear warm-up then cosine decay to
        lr/10, gradient clipping at 1; rows drawn in seeded epochs of random order."""
        import torch

        from modelcollapse.neural.torch_utils import torch_session

        rows = torch.from_numpy(rows_matrix(data["tokens"]))
        steps, batch = self._num_steps(len(rows)), min(int(self.batch_size), len(rows))
        started = time.perf_counter()
        with torch_session(self.threads, self.device):
            module = self._new_module().to(self.device)  # initialised on the CPU, as anywhere
            torch.manual_seed(int(self.random_state or 0))  # dropout
            order = torch.Generator().manual_seed(int(self.random_state or 0))
            params = [p for p in module.parameters() if p.requires_grad]
            groups = [
                {"params": [p for p in params if p.dim() >= 2], "weight_decay": self.weight_decay},
                {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
            ]
            opt = torch.optim.AdamW(groups, lr=self.lr, betas=(0.9, 0.95), foreach=False)
            module.train()
            perm, cursor, losses = torch.randperm(len(rows), generator=order), 0, []
            for step in _progress(range(steps), desc="train", unit="step"):
                if cursor + batch > len(rows):
                    perm, cursor = torch.randperm(len(rows), generator=order), 0
                idx = rows[perm[cursor : cursor + batch]].to(self.device)
                cursor += batch
                for group in opt.param_groups:
                    group["lr"] = self.lr * lr_scale(step, steps)
                loss = module.loss(idx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0, foreach=False)
                opt.step()
                losses.append(float(loss.detach()))
        tail = losses[-max(1, steps // 10) :]
        self.module_ = module
        self.training_ = {
            "steps": steps,
            "batch_size": batch,
            "rows": len(rows),
            "tokens_seen": int(steps * batch * (rows.shape[1] - 1)),
            "final_train_loss": float(np.mean(tail)),
            "num_params": module.num_params(),
        }
        elapsed = time.perf_counter() - started
        log.info(
            "lm: %d steps on %d rows in %.1fs (%.0f tokens/s), final train loss %.3f",
            steps, len(rows), elapsed, self.training_["tokens_seen"] / elapsed,
            self.training_["final_train_loss"],
        )  # fmt: skip
        return self

    # --- generation and scoring ---------------------------------------------------

    def sample(
        self, n: int, rng: np.random.Generator, prompts: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Continuations of the first ``n`` prompt rows, ``max_new_tokens`` tokens each."""
        import torch

        from modelcollapse.neural.torch_utils import torch_seed, torch_session
        from modelcollapse.neural.transformer import generate

        self._check_fitted()
        if prompts is None or len(prompts) < n:
            got = 0 if prompts is None else len(prompts)
            raise ValueError(f"lm sample: needs {n} prompt rows (prompts=), got {got}")
        new = int(self.max_new_tokens or self.block_len)
        beams = int(self.num_beams) if self.decoding == "beam" else 1
        per_batch = max(1, int(self.generation_batch_size) // beams)
        matrix = rows_matrix(prompts["tokens"].iloc[:n])
        if (matrix < 0).any():
            raise ValueError("lm sample: prompts must have equal lengths")
        generator = torch.Generator(self.device).manual_seed(torch_seed(rng))
        out = []
        started = time.perf_counter()
        with torch_session(self.threads, self.device):
            module = self.module_.to(self.device)
            for start in _progress(range(0, n, per_batch), desc="generate", unit="batch"):
                batch = torch.from_numpy(matrix[start : start + per_batch]).to(self.device)
                cont = generate(module, batch, new, **self._decoding(), generator=generator)
                out.append(cont.cpu().numpy())
        elapsed = time.perf_counter() - started
        log.info("lm: generated %d x %d tokens in %.1fs (%s)", n, new, elapsed, self.decoding)
        return token_frame(np.concatenate(out) if out else np.empty((0, new)))

    def _decoding(self) -> dict[str, Any]:
        return {
            "strategy": self.decoding,
            "temperature": float(self.temperature),
            "top_k": self.top_k,
            "top_p": self.top_p,
            "num_beams": int(self.num_beams),
            "repetition_penalty": float(self.repetition_penalty),
        }

    def token_logprobs(self, data: pd.DataFrame, batch_size: int = 256) -> np.ndarray:
        """``(rows, L - 1)`` log-probabilities of tokens 2..L; NaN at padding."""
        import torch

        from modelcollapse.neural.torch_utils import torch_session

        self._check_fitted()
        matrix = rows_matrix(data["tokens"])
        out = []
        with torch_session(self.threads, self.device):
            module = self.module_.to(self.device).eval()
            for start in range(0, len(matrix), batch_size):
                batch = torch.from_numpy(matrix[start : start + batch_size]).to(self.device)
                out.append(module.token_logprobs(batch).cpu().numpy())
        logp = np.concatenate(out).astype(np.float64)
        return np.where(matrix[:, 1:] < 0, np.nan, logp)

    def score(self, data: pd.DataFrame) -> np.ndarray:
        """Per-row log-likelihood (nats) of tokens 2..L given their predecessors."""
        return np.nansum(self.token_logprobs(data), axis=1)

    def perplexity(self, data: pd.DataFrame) -> np.ndarray:
        """Per-row perplexity: ``exp`` of the mean negative log-probability of tokens 2..L."""
        return np.exp(-np.nanmean(self.token_logprobs(data), axis=1))

    # --- checkpoints ----------------------------------------------------------------

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """safetensors (weights; the head is tied to the embedding) + JSON (params,
        architecture, tokenizer md5, training summary): the checkpoint describes itself."""
        from modelcollapse.neural.torch_utils import state_to_numpy

        self._check_fitted()
        meta = {
            "family": self.family,
            "class": type(self).__name__,
            "params": self.get_params(),
            "architecture": asdict(self.module_.cfg),
            "tokenizer_md5": self.tokenizer_md5,
            "training": self.training_,
        }
        if extra:
            meta["extra"] = extra
        io.save_checkpoint(path, state_to_numpy(self.module_, skip=("lm_head.weight",)), meta)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        from modelcollapse.neural.torch_utils import load_numpy_state
        from modelcollapse.neural.transformer import GPT

        tensors, meta = io.load_checkpoint(path)
        if meta.get("family") != cls.family:
            raise ArtifactError(
                f"checkpoint {path} is of family {meta.get('family')!r}, expected {cls.family!r}"
            )
        model = cls(**meta.get("params", {}))
        module = GPT(model.config())
        try:
            load_numpy_state(module, tensors, tied=("lm_head.weight",))
        except (ValueError, RuntimeError) as exc:
            raise ArtifactError(f"checkpoint {path}: {exc}") from exc
        module.eval()
        model.module_, model.training_ = module, meta.get("training", {})
        return model


# --- human data ---------------------------------------------------------------------


def load_human(
    spec: dict[str, Any], out_dir: str | Path, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """The corpus of ``human.<id>.data``, split by document, tokenized, in blocks
    (:func:`modelcollapse.neural.text.prepare_corpus`)."""
    return text.prepare_corpus(spec["data"], out_dir, rng, rare_mass=RARE_MASS)


def load_truth(human_dir: str | Path) -> Corpus:
    return text.load_corpus(human_dir)


# --- the run's hooks ----------------------------------------------------------------


def build_model(
    options: dict[str, Any], truth: Corpus, random_state: int, init_seed: int | None = None
) -> Model:
    unknown = set(options) - set(Model._param_names) - set(NOT_MODEL_OPTIONS)
    if unknown:
        raise ValueError(f"lm options: unknown key {sorted(unknown)[0]!r}")
    kwargs = {k: v for k, v in options.items() if k not in NOT_MODEL_OPTIONS}
    return Model(
        **kwargs,
        vocab_size=truth.vocab_size,
        block_len=truth.block_len,
        tokenizer_md5=truth.tokenizer_md5,
        init_seed=init_seed,
        random_state=random_state,
    )


def annotate_samples(samples: pd.DataFrame, reference: Model) -> pd.DataFrame:
    """``ref_perplexity``: each synthetic row's perplexity under the generation-0 model."""
    return samples.assign(ref_perplexity=reference.perplexity(samples))


def evaluate(
    model: Model,
    truth: Corpus,
    test: pd.DataFrame,
    samples: pd.DataFrame,
    reference: Model | None = None,
) -> dict[str, float]:
    """Test perplexity on the human test split; the samples' perplexity under the
    generation-0 model (mean, median, 95th percentile: the tail); distinct-n,
    repetition rate and the share of rare tokens (RARE_MASS) of the samples."""
    logp = model.token_logprobs(test)
    if "ref_perplexity" in samples:
        ref = samples["ref_perplexity"].to_numpy(float)
    else:
        ref = (reference or model).perplexity(samples)
    rows = [np.asarray(r) for r in samples["tokens"]]
    return {
        "test_perplexity": float(np.exp(-np.nanmean(logp))),
        "ref_perplexity_mean": float(np.mean(ref)),
        "ref_perplexity_median": float(np.median(ref)),
        "ref_perplexity_p95": float(np.quantile(ref, 0.95)),
        **{f"distinct_{n}": text.distinct_n(rows, n) for n in (1, 2, 3)},
        "repetition_rate": text.repetition_rate(rows, REPETITION_N),
        "rare_token_share": text.rare_share(rows, truth.rare),
    }


def snapshot_figures(
    run: str, settings: dict[str, Any], truth: Corpus, root: str | Path = ".", *, title
) -> dict[str, Any]:
    """Histograms (log x axis) of each plotted generation's samples' perplexity under
    the generation-0 model: the paper's figure (the mass shifts to low perplexity while
    a long tail grows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from modelcollapse.paths import gen_file

    gens = sorted(set(settings.get("plot_generations") or ()))
    if not gens:
        return {}
    values = {
        g: io.read_table(gen_file(run, g, "samples.parquet", root), ["ref_perplexity"])[
            "ref_perplexity"
        ].to_numpy(float)
        for g in gens
    }
    finite = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in values.values()])
    edges = np.geomspace(finite.min() * 0.9, finite.max() * 1.1, 50)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(gens)))
    for color, g in zip(colors, gens, strict=True):
        ax.hist(
            values[g],
            bins=edges,
            weights=np.full(len(values[g]), 1.0 / max(1, len(values[g]))),
            histtype="step",
            lw=1.5,
            color=color,
            label=f"generation {g}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("perplexity of generated blocks under the generation-0 model")
    ax.set_ylabel("share of blocks")
    ax.legend()
    fig.suptitle(title("perplexity of each generation's samples (scored by generation 0)"))
    return {"snapshots_ref_perplexity.png": fig}
