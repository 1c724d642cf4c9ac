"""A token stream cut into training rows for the one loader (``dlfp.data.loader.Loader``).

Two layouts, both a ``Split`` of fixed-width rows of ``context + 1`` token ids (inputs are a
row's first ``context`` ids, targets its last ``context``):

- packed: contiguous windows of the token stream, each overlapping the next by one token, so
  every token but the first is a target exactly once per epoch; no padding, the fastest;
- padded: the study's variable-length sequences, one paragraph each (cut into pieces of at most
  ``context + 1`` tokens), padded with [PAD] at the end; ``length`` holds each row's real tokens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch

from dlfp.data.images import Split

PARAGRAPH_BREAK = re.compile(r"\n(?:[ \t]*\n)+")


def packed_windows(ids: np.ndarray, context: int) -> Split:
    """Rows ``ids[i*context : i*context + context + 1]``; the tail that fills no whole row is dropped."""
    rows = (len(ids) - 1) // context
    stream = torch.from_numpy(np.ascontiguousarray(ids[: rows * context + 1], dtype=np.int64))
    return Split(x=stream.unfold(0, context + 1, context).contiguous())


def paragraphs(text: str) -> list[str]:
    """The text's blank-line separated paragraphs, empty ones left out."""
    return [p for p in PARAGRAPH_BREAK.split(text) if p.strip()]


def padded_sequences(token_lists: Sequence[Sequence[int]], context: int, pad_id: int) -> Split:
    """One row per paragraph piece of 2 to ``context + 1`` tokens, padded with ``pad_id``."""
    width = context + 1
    pieces = [ids[i : i + width] for ids in token_lists for i in range(0, len(ids), width)]
    pieces = [p for p in pieces if len(p) >= 2]  # a single token predicts nothing
    x = np.full((len(pieces), width), pad_id, dtype=np.int64)
    for row, piece in zip(x, pieces):
        row[: len(piece)] = piece
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    return Split(x=torch.from_numpy(x), length=torch.from_numpy(lengths))


def scoring_windows(ids: np.ndarray, context: int, first_id: int, pad_id: int) -> tuple[torch.Tensor, int]:
    """Rows that let a model score every token of ``ids`` once: the stream ``[first_id] + ids`` cut
    like ``packed_windows``, the last row padded. Returns the rows and the number of real targets."""
    stream = np.concatenate([[first_id], np.asarray(ids, dtype=np.int64)])
    rows = -(-(len(stream) - 1) // context)
    padded = np.full(rows * context + 1, pad_id, dtype=np.int64)
    padded[: len(stream)] = stream
    return torch.from_numpy(padded).unfold(0, context + 1, context).contiguous(), len(stream) - 1
