"""Per-batch transforms: batched tensor functions on a batch's named fields, chosen by name from
config (``train.transforms`` for every batch, ``train.augment`` for training batches only).

A transform takes the batch dict and a generator (seeded per batch by the loader, so augmented
batches are reproduced exactly on resume) and returns the new batch. ``random`` says whether it
draws from the generator; ``rowwise`` that it maps each row on its own without randomness, so the
loader may apply it to a whole chunk of batches at once (fewer, larger operations).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from dlfp.errors import DlfpError

Batch = dict[str, torch.Tensor]


class Transform:
    random = False
    rowwise = False

    def __call__(self, batch: Batch, gen: torch.Generator | None) -> Batch:
        raise NotImplementedError


class Standardize(Transform):
    """uint8 images -> (x / 255 - mean) / std per channel, as one fused multiply-add."""

    rowwise = True

    def __init__(self, mean: Sequence[float], std: Sequence[float], field: str = "x") -> None:
        std_t = torch.tensor(std).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -torch.tensor(mean).view(1, -1, 1, 1) / std_t
        self.field = field

    def __call__(self, batch: Batch, gen: torch.Generator | None) -> Batch:
        x = batch[self.field]
        if self.scale.device != x.device:
            self.scale, self.shift = self.scale.to(x.device), self.shift.to(x.device)
        return {**batch, self.field: x.to(torch.float32, copy=True).mul_(self.scale).add_(self.shift)}


class Rescale(Transform):
    """uint8 images 0..255 -> float in [low, high] (the DDPM's [-1, 1])."""

    rowwise = True

    def __init__(self, low: float = -1.0, high: float = 1.0, field: str = "x") -> None:
        self.scale, self.low, self.field = (high - low) / 255.0, low, field

    def __call__(self, batch: Batch, gen: torch.Generator | None) -> Batch:
        x = batch[self.field].to(torch.float32, copy=True)
        return {**batch, self.field: x.mul_(self.scale).add_(self.low)}


class RandomCrop(Transform):
    """Zero-pad by ``padding`` pixels, then crop the original size at a random offset per image."""

    random = True

    def __init__(self, padding: int = 4, field: str = "x") -> None:
        if padding < 1:
            raise DlfpError(f"random_crop padding={padding} must be at least 1")
        self.padding, self.field = int(padding), field

    def __call__(self, batch: Batch, gen: torch.Generator | None) -> Batch:
        x = batch[self.field]
        n, _, h, w = x.shape
        p = self.padding
        padded = F.pad(x, (p, p, p, p))
        dy, dx = (torch.randint(0, 2 * p + 1, (2, n), generator=gen, device=x.device))
        rows = (torch.arange(h, device=x.device) + dy[:, None])[:, None, :, None]
        cols = (torch.arange(w, device=x.device) + dx[:, None])[:, None, None, :]
        images = torch.arange(n, device=x.device)[:, None, None, None]
        channels = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        return {**batch, self.field: padded[images, channels, rows, cols]}


class HorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``."""

    random = True

    def __init__(self, p: float = 0.5, field: str = "x") -> None:
        self.p, self.field = float(p), field

    def __call__(self, batch: Batch, gen: torch.Generator | None) -> Batch:
        x = batch[self.field]
        flip = torch.rand(len(x), generator=gen, device=x.device) < self.p
        return {**batch, self.field: torch.where(flip[:, None, None, None], x.flip(-1), x)}


# name -> builder(data statistics, **options); ``data`` is the ImageData (or None) of the run
TRANSFORMS: dict[str, Callable[..., Transform]] = {
    "standardize": lambda data, **kw: Standardize(_stats(data, "mean"), _stats(data, "std"), **kw),
    "rescale": lambda data, **kw: Rescale(**kw),
    "random_crop": lambda data, **kw: RandomCrop(**kw),
    "hflip": lambda data, **kw: HorizontalFlip(**kw),
}


def build_transforms(entries: Sequence[Any], data: Any = None,
                     key: str = "train.transforms") -> list[Transform]:
    """Entries are a name (``standardize``) or a mapping with ``name`` and options
    (``{name: random_crop, padding: 4}``)."""
    built = []
    for entry in entries:
        options = dict(entry) if not isinstance(entry, str) else {"name": entry}
        name = options.pop("name", None)
        if name not in TRANSFORMS:
            raise DlfpError(f"{key} has {name!r}, which is not a transform; known: {', '.join(TRANSFORMS)}")
        try:
            built.append(TRANSFORMS[name](data, **options))
        except TypeError as e:
            raise DlfpError(f"{key}: bad options {options} for {name}: {e}") from None
    return built


def _stats(data: Any, name: str) -> Sequence[float]:
    if getattr(data, name, None) is None:
        raise DlfpError("the standardize transform needs a dataset with channel statistics (images)")
    return getattr(data, name)
