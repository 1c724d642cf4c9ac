"""Checks every loaded dataset passes before it is used: counts, shapes and value ranges.

A file that reads without error can still hold the wrong thing (labels of another file, a label
of 200, 59,000 labels beside 60,000 images); training on it fails deep inside the model or, worse,
silently. Each loader calls these on what it read, with the file's name and how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dlfp.errors import DlfpError


def check_labelled_images(images: np.ndarray, labels: np.ndarray, *, image_shape: Sequence[int],
                          classes: int, source: str, fix: str) -> None:
    """Images (N, *image_shape) and integer labels (N,) in [0, classes)."""
    problem = None
    if images.ndim != 1 + len(image_shape) or tuple(images.shape[1:]) != tuple(image_shape):
        problem = f"images of shape {images.shape}, expected (N, {', '.join(map(str, image_shape))})"
    elif labels.ndim != 1:
        problem = f"labels of shape {labels.shape}, expected one label per image (N,)"
    elif len(images) != len(labels):
        problem = f"{len(images)} images but {len(labels)} labels"
    elif len(labels) and (labels.min() < 0 or labels.max() >= classes):
        problem = f"labels from {labels.min()} to {labels.max()}, expected 0 to {classes - 1}"
    if problem:
        raise DlfpError(f"{source}: {problem}; {fix}")


def check_pixel_range(values: np.ndarray, *, source: str, fix: str) -> None:
    """Pixel values read as integers must fit a byte, 0..255 (a cast would wrap 300 to 44)."""
    if values.size and (values.min() < 0 or values.max() > 255):
        raise DlfpError(f"{source}: pixel values from {values.min()} to {values.max()}, expected 0 to "
                        f"255; {fix}")
