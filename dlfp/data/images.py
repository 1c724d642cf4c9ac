"""The in-memory form every dataset loads into: named tensor fields per split, and seeded
stratified splits and subsets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from dlfp.errors import DlfpError


class Split:
    """Named tensors with one row per example: images ``x`` and labels ``y``, tokens, points, ...

    Fields are read as attributes (``split.x``) or by name (``split["x"]``).
    """

    def __init__(self, **fields: torch.Tensor) -> None:
        sizes = {name: len(t) for name, t in fields.items()}
        if not fields or len(set(sizes.values())) != 1:
            raise ValueError(f"a split needs fields of one common length, got {sizes}")
        self.fields = fields

    def __getattr__(self, name: str) -> torch.Tensor:
        fields = self.__dict__.get("fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(f"split has no field {name!r} (fields: {', '.join(fields)})")

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.fields[name]

    def __len__(self) -> int:
        return len(next(iter(self.fields.values())))

    def to(self, device: torch.device | str) -> Split:
        return Split(**{k: v.to(device) for k, v in self.fields.items()})

    def subset(self, index: torch.Tensor) -> Split:
        return Split(**{k: v[index] for k, v in self.fields.items()})


@dataclass
class ImageData:
    """Train, validation and test splits of one image classification dataset (either of the last
    two may be absent, not both).

    ``mean``/``std`` are per-channel statistics of the training images on the 0..1 scale, for the
    ``standardize`` batch transform.
    """

    name: str
    train: Split
    val: Split | None
    test: Split | None
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def eval_splits(self) -> dict[str, Split]:
        return {name: s for name, s in (("val", self.val), ("test", self.test)) if s is not None}

    def check_in_channels(self, in_channels: int) -> None:
        """A model's ``in_channels`` against these images' channels, before it trains on them."""
        channels = self.train.x.shape[1]
        if in_channels != channels:
            raise DlfpError(f"model.in_channels={in_channels} but dataset {self.name} has "
                            f"{channels}-channel images; set model.in_channels={channels}")


def image_data(name: str, train: Split, val: Split | None, test: Split | None, classes: list[str],
               train_size: int | None, subset_seed: int) -> ImageData:
    """Finish loading: take the ``dataset.train_size`` subset of the training split, then its
    channel statistics (of the images actually trained on)."""
    train = stratified_subset(train, train_size, subset_seed)
    mean, std = channel_stats(train.x)
    return ImageData(name=name, train=train, val=val, test=test, classes=classes, mean=mean, std=std)


def stratified_holdout(labels: np.ndarray, holdout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, holdout) with ``holdout`` items spread over classes in proportion.

    The same labels and seed always give the same split, whatever the run seed is.
    """
    if not 0 < holdout < len(labels):
        raise ValueError(f"holdout size {holdout} must be between 1 and {len(labels) - 1}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts * holdout / len(labels)).astype(int)
    # hand the rounding remainder to the largest classes so the total is exact
    for i in np.argsort(-counts)[: holdout - quota.sum()]:
        quota[i] += 1
    held = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    held_idx = np.sort(np.concatenate(held))
    keep_idx = np.setdiff1d(np.arange(len(labels)), held_idx)
    return keep_idx, held_idx


def stratified_subset(split: Split, size: int | None, seed: Any) -> Split:
    """``dataset.train_size`` examples with the class proportions of ``split`` (its ``y`` field),
    chosen by ``seed`` (``dataset.subset_seed``, the run seed by default); None keeps them all."""
    if size is None or size == len(split):
        return split
    if size > len(split):
        raise DlfpError(
            f"dataset.train_size={size} is larger than the training split ({len(split)} images); "
            f"use dataset.train_size <= {len(split)} or null for all of them"
        )
    classes = int(split.y.unique().numel())
    if size < classes:
        raise DlfpError(f"dataset.train_size={size} must be at least the number of classes ({classes})")
    _, chosen = stratified_holdout(split.y.numpy(), size, int(seed))
    return split.subset(torch.from_numpy(chosen))


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (sample) std of uint8 images (N, C, H, W), on the 0..1 scale.

    Computed exactly from each channel's histogram of the 256 pixel values (integer sums, one
    rounding at the end), so the statistics, and every run normalised by them, are the same on
    any machine and with any number of threads; a float32 mean over millions of pixels is not.
    """
    values = torch.arange(256, dtype=torch.int64)
    means, stds = [], []
    for channel in x.transpose(0, 1):
        counts = torch.bincount(channel.flatten(), minlength=256)
        n, total, squares = int(counts.sum()), int(counts @ values), int(counts @ values**2)
        means.append(total / (n * 255))
        stds.append(math.sqrt(Fraction(n * squares - total * total, n * (n - 1) * 255 * 255)))
    return tuple(means), tuple(stds)
