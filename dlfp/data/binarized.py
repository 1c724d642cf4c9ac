"""Binarised, downsampled MNIST rows for the VAE: a class-balanced training set and a small validation set.

Images are area-downsampled (28x28 -> 14x14 by default), thresholded on the 0..255 scale (pixel >
threshold -> 1) and flattened, then kept on the training device as float32 rows of 0s and 1s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import DictConfig

from dlfp.data.downsample import area_downsample
from dlfp.data.images import ImageData, stratified_holdout
from dlfp.errors import DlfpError

log = logging.getLogger(__name__)


@dataclass
class BinaryImages:
    train: torch.Tensor  # float32 (N, side*side) of 0/1
    train_labels: torch.Tensor
    val: torch.Tensor
    val_labels: torch.Tensor
    side: int  # image side after downsampling
    per_class: int  # training images per digit actually used

    def to(self, device: torch.device | str) -> BinaryImages:
        return BinaryImages(self.train.to(device), self.train_labels.to(device), self.val.to(device),
                            self.val_labels.to(device), self.side, self.per_class)


def binarize(x: torch.Tensor, factor: int = 2, threshold: float = 128.0) -> torch.Tensor:
    """uint8 images (N, 1, H, W) -> float32 rows (N, H/factor * W/factor): block mean > threshold."""
    small = area_downsample(x, factor) if factor > 1 else x.float()
    return (small > threshold).float().flatten(1)


def balanced_indices(
    labels: np.ndarray, per_class: int, *, strict: bool, seed: int, dataset: str
) -> tuple[np.ndarray, int]:
    """Sorted indices of ``n`` seeded random images of each class, and ``n``.

    n = per_class when every class has that many; otherwise the smallest class count (so the set
    stays balanced), or, with ``strict``, an error that says what to change.
    """
    classes, counts = np.unique(labels, return_counts=True)
    fewest = int(counts.min())
    n = per_class
    if fewest < per_class:
        short = int(classes[counts.argmin()])
        if strict:
            raise DlfpError(
                f"dataset {dataset} has only {fewest} training images of class {short}, fewer than "
                f"vae.data.per_class={per_class}, and vae.data.strict_balance=true. Lower "
                f"vae.data.per_class to at most {fewest}, use a larger dataset (dataset=mnist), or set "
                "vae.data.strict_balance=false to train on as many per class as every class has."
            )
        n = fewest
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:n] for c in classes]
    return np.sort(np.concatenate(chosen)), n


def load_binarized(data: ImageData, cfg: DictConfig) -> BinaryImages:
    """The VAE's data from an image dataset, following ``cfg`` (the ``vae.data`` config node)."""
    if cfg.per_class < 1:
        raise DlfpError(f"vae.data.per_class must be positive, got {cfg.per_class}")
    train_idx, per_class = balanced_indices(
        data.train.y.numpy(), int(cfg.per_class), strict=bool(cfg.strict_balance),
        seed=int(cfg.selection_seed), dataset=data.name,
    )
    if per_class < cfg.per_class:
        log.warning(
            "dataset %s: its training split has only %d images of some digit, so the VAE trains on %d "
            "per digit (%d images) instead of the requested %d per digit (vae.data.per_class)",
            data.name, per_class, per_class, len(train_idx), cfg.per_class,
        )
    n_val = len(data.val)
    if not 0 < cfg.val_images <= n_val:
        raise DlfpError(
            f"vae.data.val_images={cfg.val_images} must be between 1 and the {n_val} images of the "
            f"validation split of {data.name} (dataset.val_size)"
        )
    val_idx = (np.arange(n_val) if cfg.val_images == n_val
               else stratified_holdout(data.val.y.numpy(), int(cfg.val_images), int(cfg.selection_seed))[1])
    height = data.train.x.shape[-1]
    if cfg.downsample < 1 or height % cfg.downsample:
        raise DlfpError(f"vae.data.downsample={cfg.downsample} must be a positive divisor of {height}")
    to_rows = lambda x: binarize(x, int(cfg.downsample), float(cfg.threshold))  # noqa: E731
    images = BinaryImages(
        train=to_rows(data.train.x[train_idx]),
        train_labels=data.train.y[train_idx],
        val=to_rows(data.val.x[val_idx]),
        val_labels=data.val.y[val_idx],
        side=height // int(cfg.downsample),
        per_class=per_class,
    )
    log.info(
        "%s binarised at %dx%d (pixel > %g): %d training images (%d per digit, from its training "
        "split), %d validation images (from its validation split of %d)",
        data.name, images.side, images.side, cfg.threshold, len(images.train), per_class,
        len(images.val), n_val,
    )
    return images
