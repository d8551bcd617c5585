"""A compact decoder-only transformer (nanoGPT's shape) and its decoding.

Attention is a sliding window: at every layer a token attends to itself and the
``context - 1`` tokens before it (in training, rows are at most ``context + 1``
tokens long, so this is plain causal attention). Positions are rotary (RoPE), so
attention depends on relative positions only and generation keeps the keys and
values of the last ``context`` tokens in a ring buffer (the KV cache: each new
token overwrites the one leaving the window, no copies), however long the prompt
plus continuation grows. Without the cache, the same function is computed over
the whole sequence with a banded causal mask. Decoding: greedy, sampling (temperature,
top-k, top-p), beam search; a repetition penalty (CTRL / Hugging Face style)
applies to every strategy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

IGNORE = -100  # target of padding positions

Cache = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    context: int  # most tokens one prediction attends to
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    rope_base: float = 10000.0


def rope(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """Rotate pairs of channels of ``x`` (B, H, T, D) by angles proportional to position."""
    half = x.shape[-1] // 2
    freqs = base ** (-torch.arange(half, dtype=torch.float32, device=x.device) / half)
    angles = positions.to(torch.float32)[:, None] * freqs[None, :]
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class SelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0
        self.n_head, self.cfg = cfg.n_head, cfg
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=False)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None,
        cache: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        q, k = rope(q, positions, self.cfg.rope_base), rope(k, positions, self.cfg.rope_base)
        ctx, kv = self.cfg.context, None
        if past is not None:  # one new token: it replaces the one leaving the window
            pos = int(positions[0])
            kv = past
            kv[0][:, :, pos % ctx], kv[1][:, :, pos % ctx] = k[:, :, 0], v[:, :, 0]
            valid = None if pos + 1 >= ctx else torch.arange(ctx, device=x.device)[None] <= pos
            y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=valid)
        else:
            band = None
            if t > ctx:  # j <= i < j + ctx
                i = torch.arange(t, device=x.device)
                band = (i[None, :] <= i[:, None]) & (i[:, None] < i[None, :] + ctx)
            y = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=band,
                is_causal=t > 1 and band is None,
                dropout_p=self.cfg.dropout if self.training else 0.0,
            )
            if cache:  # positions 0..t-1 fill slots 0..t-1 of the ring
                kv = (
                    k.new_zeros(b, self.n_head, ctx, k.shape[-1]),
                    v.new_zeros(b, self.n_head, ctx, k.shape[-1]),
                )
                kv[0][:, :, :t], kv[1][:, :, :t] = k, v
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        return self.resid_dropout(self.c_proj(y)), kv


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=False)
        self.attn = SelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=False),
            nn.GELU(),
            nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=False),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x, positions, past, cache=False):
        a, kv = self.attn(self.ln_1(x), positions, past, cache)
        x = x + a
        return x + self.mlp(self.ln_2(x)), kv


class GPT(nn.Module):
    """Token embedding, pre-norm blocks, final norm, head tied to the embedding."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=False)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled residual projections
            if name.endswith("c_proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self, idx: torch.Tensor, start: int = 0, past: Cache | None = None, cache: bool = False
    ) -> tuple[torch.Tensor, Cache | None]:
        """Logits (B, T, V) of ``idx`` at positions ``start..``.

        ``cache=True`` (a prompt, positions from 0) returns a KV cache; with ``past``
        (one token at position ``start``) the cache is updated in place and returned.
        """
        t = idx.shape[1]
        if (past is not None and t != 1) or (cache and t > self.cfg.context):
            raise ValueError(f"{t} tokens: the cache takes a prompt of <= context or one token")
        positions = torch.arange(start, start + t, device=idx.device)
        x = self.drop(self.wte(idx))
        kvs = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, positions, None if past is None else past[i], cache)
            kvs.append(kv)
        return self.lm_head(self.ln_f(x)), kvs if (cache or past is not None) else None

    def loss(self, idx: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy of rows ``idx`` (B, T), IGNORE-padded on the right."""
        logits, _ = self(idx[:, :-1].clamp(min=0))
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), idx[:, 1:].reshape(-1), ignore_index=IGNORE
        )

    @torch.no_grad()
    def token_logprobs(self, idx: torch.Tensor) -> torch.Tensor:
        """log p(idx[:, i] | idx[:, :i]) for i >= 1: shape (B, T - 1); 0 at padding."""
        logits, _ = self(idx[:, :-1].clamp(min=0))
        targets = idx[:, 1:]
        logp = torch.log_softmax(logits.float(), dim=-1)
        out = logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
        return out.masked_fill(targets == IGNORE, 0.0)


# --- decoding ---------------------------------------------------------------------


def penalize_repeats(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Divide positive / multiply negative logits of tokens already in the sequence."""
    if penalty == 1.0:
        return logits
    scaled = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, scaled, logits)


def filter_top_k_top_p(logits: torch.Tensor, top_k: int | None, top_p: float | None):
    """-inf outside the ``top_k`` largest logits and outside the nucleus of mass ``top_p``."""
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = cum - torch.softmax(sorted_logits, dim=-1) >= top_p  # mass before it >= p
        drop[..., 0] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), -math.inf)
    return logits


def draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row by inverting the cumulative distribution at a uniform draw
    (tokens of zero probability are never drawn); cheaper than ``torch.multinomial``."""
    cdf = probs.cumsum(dim=-1)
    u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).clamp(max=probs.shape[-1] - 1)


class _Stepper:
    """Next-token logits: from the KV cache, or recomputed over the sequence since the
    prompt's window (the same function, ``context`` times the work per token)."""

    def __init__(self, model: GPT, seqs: torch.Tensor, use_cache: bool) -> None:
        self.model, self.use_cache, self.context = model, use_cache, model.cfg.context
        window = seqs[:, -self.context :]
        self.start, self.pos = seqs.shape[1] - window.shape[1], window.shape[1]
        logits, self.cache = model(window, cache=use_cache)
        self.logits = logits[:, -1]

    def reorder(self, index: torch.Tensor) -> None:
        self.logits = self.logits.index_select(0, index)
        if self.use_cache:
            self.cache = [
                (k.index_select(0, index), v.index_select(0, index)) for k, v in self.cache
            ]

    def advance(self, seqs: torch.Tensor) -> None:
        if self.use_cache:
            logits, self.cache = self.model(seqs[:, -1:], start=self.pos, past=self.cache)
        else:
            logits, _ = self.model(seqs[:, self.start :])  # the cache's function, recomputed
        self.pos += 1
        self.logits = logits[:, -1]


@torch.no_grad()
def generate(
    model: GPT,
    prompts: torch.Tensor,
    max_new_tokens: int,
    *,
    strategy: str = "sample",
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    num_beams: int = 1,
    repetition_penalty: float = 1.0,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Continuations (B, max_new_tokens) of ``prompts`` (B, P): one batch, one strategy.

    ``strategy``: ``greedy``; ``sample`` (``temperature``, ``top_k``, ``top_p``,
    drawn with ``generator``); ``beam`` (``num_beams`` hypotheses per prompt, the
    most likely continuation of exactly ``max_new_tokens`` tokens is returned).
    """
    model.eval()
    if strategy == "beam":
        return _beam_search(
            model, prompts, max_new_tokens, num_beams, repetition_penalty, use_cache
        )
    dev = prompts.device
    if strategy not in ("greedy", "sample"):
        raise ValueError(f"unknown decoding strategy {strategy!r}")
    seqs = prompts
    seen = torch.zeros(prompts.shape[0], model.cfg.vocab_size, dtype=torch.bool, device=dev)
    seen.scatter_(1, prompts, True)
    step = _Stepper(model, seqs, use_cache)
    for i in range(max_new_tokens):
        logits = penalize_repeats(step.logits.float(), seen, repetition_penalty)
        if strategy == "greedy":
            nxt = logits.argmax(dim=-1, keepdim=True)
        else:
            logits = filter_top_k_top_p(logits / temperature, top_k, top_p)
            nxt = draw(torch.softmax(logits, dim=-1), generator)
        seqs = torch.cat((seqs, nxt), dim=1)
        seen.scatter_(1, nxt, True)
        if i + 1 < max_new_tokens:
            step.advance(seqs)
    return seqs[:, prompts.shape[1] :]


def _beam_search(
    model: GPT,
    prompts: torch.Tensor,
    max_new_tokens: int,
    num_beams: int,
    repetition_penalty: float,
    use_cache: bool,
) -> torch.Tensor:
    b, k, vocab = prompts.shape[0], num_beams, model.cfg.vocab_size
    seqs = prompts.repeat_interleave(k, dim=0)
    dev = prompts.device
    seen = torch.zeros(b * k, vocab, dtype=torch.bool, device=dev).scatter_(1, seqs, True)
    scores = torch.full((b, k), -math.inf, device=dev)
    scores[:, 0] = 0.0  # identical beams at the start: expand the first only
    step = _Stepper(model, seqs, use_cache)
    offsets = (torch.arange(b, device=dev) * k)[:, None]
    for i in range(max_new_tokens):
        logits = penalize_repeats(step.logits.float(), seen, repetition_penalty)
        total = scores[..., None] + torch.log_softmax(logits, dim=-1).view(b, k, vocab)
        scores, flat = torch.topk(total.view(b, k * vocab), k, dim=-1)
        parent = (flat // vocab + offsets).view(-1)
        nxt = (flat % vocab).view(-1, 1)
        seqs = torch.cat((seqs.index_select(0, parent), nxt), dim=1)
        seen = seen.index_select(0, parent).scatter_(1, nxt, True)
        step.reorder(parent)
        if i + 1 < max_new_tokens:
            step.advance(seqs)
    best = scores.argmax(dim=-1) + offsets[:, 0]
    return seqs[best, prompts.shape[1] :]
