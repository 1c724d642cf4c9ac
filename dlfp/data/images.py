"""The in-memory form every image dataset loads into, and a seeded stratified split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dlfp.errors import DlfpError


@dataclass
class Split:
    """Images as uint8 (N, C, H, W) and integer labels (N,)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class ImageData:
    """Train/validation (and optional test) splits of one image classification dataset.

    ``mean``/``std`` are per-channel statistics of the training images on the 0..1 scale; the
    loader normalises with them.
    """

    name: str
    train: Split
    val: Split
    test: Split | None
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def eval_splits(self) -> dict[str, Split]:
        splits = {"val": self.val}
        if self.test is not None:
            splits["test"] = self.test
        return splits


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


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images (N, C, H, W), on the 0..1 scale."""
    xf = x.float().div_(255)
    mean = xf.mean(dim=(0, 2, 3))
    std = xf.std(dim=(0, 2, 3))
    return tuple(mean.tolist()), tuple(std.tolist())


def refuse_train_size(train_size: int | None) -> None:
    """Loaders always return the whole training split: ``dataset.train_size`` is applied by the
    tasks that subsample it themselves (task=svm, seeded by the run seed), so a loader that is
    handed one was called by a task that would silently ignore it."""
    if train_size is not None:
        raise DlfpError(
            f"dataset.train_size={train_size} is only read by tasks that subsample the training split "
            "themselves (experiment=mnist_svm); this task trains on the whole split. Remove "
            "dataset.train_size (in mnist_compare, set it for the SVM alone with "
            "'compare.overrides.mnist_svm=[\"dataset.train_size=N\"]')."
        )
