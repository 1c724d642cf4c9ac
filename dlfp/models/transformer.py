"""A decoder-only Transformer language model written from its parts (no nn.Transformer* or
nn.MultiheadAttention), as the study builds it: token embedding plus the sinusoidal positional
encoding, pre-norm blocks h = h + Attn(LN(h)), h = h + MLP(LN(h)), a final LayerNorm and a linear
head (optionally tied to the embedding).

Attention is written out, softmax(Q K^T / sqrt(p) + mask) V with the causal (triangular) mask and
a key-padding mask, or computed by ``F.scaled_dot_product_attention`` (``sdpa=True``; the two
agree, tested). With a padding mask, positions count only the real tokens, so left padding (none
of the tasks pads on the left today) changes no real token's logits (tested). ``generate`` samples
with temperature, top-k and top-p, with or without a cache of the keys and values of earlier
positions (the same tokens for the same seed, tested). ``loss(batch)`` is the training loss, the
mean next-token cross-entropy (``next_token_loss``), which the LM task's scoring shares.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

Cache = list[tuple[torch.Tensor, torch.Tensor]]  # per block: keys and values (B, heads, T, head_dim)
IGNORE = -100  # cross_entropy's ignore_index: padded targets


def sinusoidal_encoding(positions: int, d_model: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)); (positions, d)."""
    pos = torch.arange(positions, dtype=torch.float64)[:, None]
    rate = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.zeros(positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * rate)
    pe[:, 1::2] = torch.cos(pos * rate[: d_model // 2])
    return pe.float()


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, heads: int, dropout: float, sdpa: bool,
                 head_dim: int | None = None) -> None:
        super().__init__()
        if head_dim is None and d_model % heads:
            raise ValueError(f"d_model={d_model} must be a multiple of heads={heads}")
        self.heads, self.sdpa, self.dropout = heads, sdpa, dropout
        self.head_dim = head_dim or d_model // heads
        self.qkv = nn.Linear(d_model, 3 * heads * self.head_dim)
        self.out = nn.Linear(heads * self.head_dim, d_model)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor,
                past: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``allowed`` (B or 1, 1, T_query, T_key): True where a query may attend to a key."""
        b, t, _ = x.shape
        inner = self.heads * self.head_dim
        q, k, v = (z.view(b, t, self.heads, self.head_dim).transpose(1, 2)
                   for z in self.qkv(x).split(inner, dim=2))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        p = self.dropout if self.training else 0.0
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
            weights = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
            y = F.dropout(weights, p, self.training) @ v
        return self.out(y.transpose(1, 2).reshape(b, t, inner)), (k, v)


class Block(nn.Module):
    def __init__(self, d_model: int, heads: int, mlp_hidden: int, dropout: float, sdpa: bool,
                 head_dim: int | None = None) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, heads, dropout, sdpa, head_dim)
        self.mlp = nn.Sequential(nn.Linear(d_model, mlp_hidden), nn.GELU(), nn.Linear(mlp_hidden, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, allowed: torch.Tensor,
                past: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        a, present = self.attn(self.norm1(h), allowed, past)
        h = h + self.drop(a)
        return h + self.drop(self.mlp(self.norm2(h))), present


class TransformerLM(nn.Module):
    """The sizes are required (their defaults live in model=transformer's schema); the options
    default to off, as the schema's do, for models built without config (tests)."""

    def __init__(self, vocab_size: int, d_model: int, heads: int, layers: int, context: int,
                 mlp_hidden: int | None = None, dropout: float = 0.0, tie_weights: bool = False,
                 sdpa: bool = False, head_dim: int | None = None) -> None:
        super().__init__()
        self.vocab_size, self.context = vocab_size, context
        self.embed = nn.Embedding(vocab_size, d_model)
        self.register_buffer("pe", sinusoidal_encoding(context, d_model), persistent=False)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, heads, mlp_hidden or 2 * d_model, dropout, sdpa, head_dim)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        if tie_weights:
            self.head.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor, padding: torch.Tensor | None = None,
                cache: Cache | None = None) -> tuple[torch.Tensor, Cache]:
        """Logits (B, T, vocab) for ``tokens`` (B, T) at positions after the ``cache``'s, and the
        new cache. ``padding`` (B, T_key) marks [PAD] positions, which no query attends to and which
        do not count as positions: a token's position is the number of real tokens before it, so a
        row's real tokens get the same logits whether it is padded at the end, at the start or not."""
        b, t = tokens.shape
        start = 0 if cache is None else cache[0][0].shape[2]
        if start + t > self.context:
            raise ValueError(f"{start + t} positions exceed the context of {self.context}")
        if padding is None:
            pe = self.pe[start:start + t]
        else:
            real_before = (~padding).long().cumsum(1)[:, start:start + t] - 1
            pe = self.pe[real_before.clamp_min(0)]  # (B, T, d); right padding: the same as the slice
        h = self.drop(self.embed(tokens) + pe)
        query = torch.arange(start, start + t, device=tokens.device)[:, None]
        key = torch.arange(start + t, device=tokens.device)[None, :]
        allowed = (key <= query)[None, None]  # causal: the query's own position and earlier ones
        if padding is not None:  # every query still sees itself, so a [PAD] query has a finite output
            allowed = (allowed & ~padding[:, None, None, :]) | (key == query)
        new_cache: Cache = []
        for i, block in enumerate(self.blocks):
            h, present = block(h, allowed, None if cache is None else cache[i])
            new_cache.append(present)
        return self.head(self.norm(h)), new_cache

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss: mean cross-entropy of each row's next tokens, ``batch["x"]`` (B, T+1)
        with ``batch["length"]`` (B,) when its rows are padded."""
        return next_token_loss(self, batch["x"], batch.get("length"))

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None, use_cache: bool = True) -> torch.Tensor:
        """``prompt`` (B, T) followed by ``new_tokens`` sampled tokens. With the cache each step
        runs only the newest token; once the context is full the window slides and every step
        runs the whole window (positions shift, so cached keys would be wrong)."""
        tokens, cache = prompt, None
        for _ in range(new_tokens):
            if use_cache and cache is not None and tokens.shape[1] <= self.context:
                logits, cache = self(tokens[:, -1:], cache=cache)
            else:
                logits, cache = self(tokens[:, -self.context:])
            nxt = sample_next(logits[:, -1].float(), temperature, top_k, top_p, generator)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        return tokens


def next_token_loss(net: nn.Module, x: torch.Tensor, length: torch.Tensor | None = None, *,
                    ignore_index: int = IGNORE, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of each row's next tokens, ``net`` run on ``x[:, :-1]``. With ``length``, rows
    are trimmed to the batch's longest and their padding is masked from attention and ignored by
    the loss; without it, targets equal to ``ignore_index`` are ignored (the scoring's [PAD])."""
    padding = None
    if length is not None:
        x = x[:, : int(length.max())]
        padding = torch.arange(x.shape[1] - 1, device=x.device)[None, :] >= (length[:, None] - 1)
    inputs, targets = x[:, :-1], x[:, 1:]
    if padding is not None:
        targets = targets.masked_fill(padding, ignore_index)
    logits, _ = net(inputs, padding=padding)
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=ignore_index,
                           reduction=reduction)


def sample_next(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
                generator: torch.Generator | None) -> torch.Tensor:
    """One token per row from softmax(logits / temperature), restricted to the ``top_k`` most
    likely and to the smallest set whose probability reaches ``top_p``; temperature 0 is argmax."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        before = ordered.softmax(-1).cumsum(-1) - ordered.softmax(-1)  # mass of the more likely tokens
        ordered = ordered.masked_fill(before >= top_p, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, ordered)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)
