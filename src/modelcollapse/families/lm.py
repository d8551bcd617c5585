"""Language model (Shumailov et al.'s OPT-125m on wikitext-2, scaled to a CPU).

A small decoder-only transformer (:mod:`modelcollapse.neural.transformer`) on
real text: Shakespeare's plays by default, or any directory of ``.txt`` files
(:mod:`modelcollapse.neural.text`). A row is one block of ``block_len`` tokens
(column ``tokens``). The protocol is the paper's: every generation starts from
the same initialisation (``same_init``); each of the first N human blocks is a
prompt and the model writes the next ``block_len`` tokens, which are the
generation's synthetic rows (``needs_prompts``); the generation-0 model scores
every generation's samples (``annotate_samples``). docs/lm.md has the details.

``score`` is the per-row log-likelihood in nats: the sum of ``log p(t_i | t_<i)``
over tokens 2..L of the row (the first token has no context and is not scored).
Perplexities are ``exp(-sum / count)`` over the scored tokens.

Torch is imported lazily: reading the family's members does not pay for it.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Self

import numpy as np
import pyarrow as pa

from modelcollapse import tables
from modelcollapse.families.base import Estimator, Family, builtin_schema
from modelcollapse.neural import text, text_figures
from modelcollapse.neural.text import Corpus, rows_matrix, token_frame

NAME = "lm"

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


class Model(Estimator):
    """Decoder-only transformer; ``module_`` (a ``GPT``) and ``training_`` once fitted.

    Its torch loops and checkpoint are :mod:`modelcollapse.neural.lm_torch`."""

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

    def fit(self, data: pa.Table) -> Self:
        """A fresh module from the initialisation seed, trained on the rows
        (:func:`modelcollapse.neural.lm_torch.train`: AdamW, warm-up then cosine decay)."""
        import torch

        from modelcollapse.neural import lm_torch
        from modelcollapse.neural.torch_utils import torch_session

        rows = torch.from_numpy(rows_matrix(data))
        steps, batch = self._num_steps(len(rows)), min(int(self.batch_size), len(rows))
        started = time.perf_counter()
        with torch_session(self.threads, self.device):
            module = self._new_module().to(self.device)  # initialised on the CPU, as anywhere
            losses = lm_torch.train(
                module, rows, steps, batch, lr=self.lr, weight_decay=self.weight_decay,
                random_state=self.random_state, device=self.device,
            )  # fmt: skip
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

    def sample(self, n: int, rng: np.random.Generator, prompts: pa.Table | None = None) -> pa.Table:
        """Continuations of the first ``n`` prompt rows, ``max_new_tokens`` tokens each."""
        import torch

        from modelcollapse.neural import lm_torch
        from modelcollapse.neural.torch_utils import torch_seed, torch_session

        self._check_fitted()
        if prompts is None or len(prompts) < n:
            got = 0 if prompts is None else len(prompts)
            raise ValueError(f"lm sample: needs {n} prompt rows (prompts=), got {got}")
        new = int(self.max_new_tokens or self.block_len)
        beams = int(self.num_beams) if self.decoding == "beam" else 1
        per_batch = max(1, int(self.generation_batch_size) // beams)
        matrix = rows_matrix(prompts.slice(0, n))
        if (matrix < 0).any():
            raise ValueError("lm sample: prompts must have equal lengths")
        generator = torch.Generator(self.device).manual_seed(torch_seed(rng))
        started = time.perf_counter()
        with torch_session(self.threads, self.device):
            module = self.module_.to(self.device)
            decoding = self._decoding()
            out = lm_torch.continuations(
                module, matrix, new, per_batch, decoding, generator, self.device
            )
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

    def token_logprobs(self, data: pa.Table, batch_size: int = 256) -> np.ndarray:
        """``(rows, L - 1)`` log-probabilities of tokens 2..L; NaN at padding."""
        from modelcollapse.neural import lm_torch
        from modelcollapse.neural.torch_utils import torch_session

        self._check_fitted()
        matrix = rows_matrix(data)
        with torch_session(self.threads, self.device):
            module = self.module_.to(self.device).eval()
            logp = lm_torch.token_logprobs(module, matrix, batch_size, self.device)
        return np.where(matrix[:, 1:] < 0, np.nan, logp)

    def score(self, data: pa.Table) -> np.ndarray:
        """Per-row log-likelihood (nats) of tokens 2..L given their predecessors."""
        return np.nansum(self.token_logprobs(data), axis=1)

    def perplexity(self, data: pa.Table) -> np.ndarray:
        """Per-row perplexity: ``exp`` of the mean negative log-probability of tokens 2..L."""
        return np.exp(-np.nanmean(self.token_logprobs(data), axis=1))

    # --- checkpoints ----------------------------------------------------------------

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """safetensors (weights; the head is tied to the embedding) + JSON (params,
        architecture, tokenizer md5, training summary): the checkpoint describes itself."""
        from modelcollapse.neural import lm_torch

        self._check_fitted()
        lm_torch.save(self, path, extra)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        from modelcollapse.neural import lm_torch

        return lm_torch.load(cls, path)


# --- human data ---------------------------------------------------------------------


def load_human(
    spec: dict[str, Any], out_dir: str | Path, rng: np.random.Generator
) -> tuple[pa.Table, pa.Table, Path]:
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


def annotate_samples(samples: pa.Table, reference: Model) -> pa.Table:
    """``ref_perplexity``: each synthetic row's perplexity under the generation-0 model."""
    return tables.with_columns(samples, ref_perplexity=reference.perplexity(samples))


def evaluate(
    model: Model,
    truth: Corpus,
    test: pa.Table,
    samples: pa.Table,
    reference: Model | None = None,
) -> dict[str, float]:
    """Test perplexity on the human test split; the samples' perplexity under the
    generation-0 model (mean, median, 95th percentile: the tail); distinct-n,
    repetition rate and the share of rare tokens (RARE_MASS) of the samples."""
    logp = model.token_logprobs(test)
    if "ref_perplexity" in samples.column_names:
        ref = tables.column(samples, "ref_perplexity", np.float64)
    else:
        ref = (reference or model).perplexity(samples)
    rows = tables.rows(samples, "tokens", np.int32)
    return {
        "test_perplexity": float(np.exp(-np.nanmean(logp))),
        "ref_perplexity_mean": float(np.mean(ref)),
        "ref_perplexity_median": float(np.median(ref)),
        "ref_perplexity_p95": float(np.quantile(ref, 0.95)),
        **{f"distinct_{n}": text.distinct_n(rows, n) for n in (1, 2, 3)},
        "repetition_rate": text.repetition_rate(rows, REPETITION_N),
        "rare_token_share": text.rare_share(rows, truth.rare),
    }


FAMILY = Family(
    name=NAME,
    model=Model,
    schema=builtin_schema(NAME),
    build_model=build_model,
    evaluate=evaluate,
    key_metrics=("test_perplexity", "ref_perplexity_median", "distinct_2"),
    metric_labels={
        "test_perplexity": "perplexity of human test text (per token)",
        "ref_perplexity_mean": "samples' perplexity under generation 0 (mean)",
        "ref_perplexity_median": "samples' perplexity under generation 0 (median)",
        "ref_perplexity_p95": "samples' perplexity under generation 0 (95th pct.)",
        "distinct_1": "distinct unigrams / all unigrams",
        "distinct_2": "distinct bigrams / all bigrams",
        "distinct_3": "distinct trigrams / all trigrams",
        "repetition_rate": "share of 4-grams repeated within a sample",
        "rare_token_share": "share of rare-token occurrences in samples",
    },
    log_metrics=LOG_METRICS,
    load_human=load_human,
    load_truth=load_truth,
    same_init=True,
    needs_prompts=True,
    annotate_samples=annotate_samples,
    snapshots=text_figures.snapshot_figures,
)
