"""Grids of small grey images drawn as one mosaic (VAE and DDPM figures)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from dlfp.viz import save_figure


def mosaic(images: np.ndarray, pad: int = 1) -> np.ndarray:
    """Tiles (rows, cols, side, side) into one image with ``pad`` grey pixels between tiles.

    One imshow per figure instead of one axes per image keeps the figures fast to draw.
    """
    rows, cols, side = images.shape[0], images.shape[1], images.shape[-1]
    step = side + pad
    canvas = np.full((rows * step + pad, cols * step + pad), 0.5)
    for r in range(rows):
        for c in range(cols):
            top, left = pad + r * step, pad + c * step
            canvas[top : top + side, left : left + side] = images[r, c]
    return canvas


def show_mosaic(ax: plt.Axes, images: np.ndarray) -> float:
    """Draw the mosaic; returns the tile pitch in pixels (for tick positions)."""
    ax.imshow(mosaic(images), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    return images.shape[-1] + 1.0


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) for ``n`` images: a near-square that ``n`` fills exactly when one exists with
    at most twice the square's columns (8 -> 2 x 4), else ceil(sqrt(n)) columns and a short last
    row (7 -> 3 x 3, two cells empty)."""
    square = math.isqrt(n - 1) + 1 if n > 0 else 1  # ceil(sqrt(n))
    exact = next((c for c in range(square, 2 * square + 1) if n % c == 0), None)
    cols = exact or square
    return -(-n // cols), cols


def tile_grid(images: np.ndarray) -> np.ndarray:
    """Images (N, side, side) as (rows, cols, side, side) of ``grid_shape(N)``; the cells no image
    fills are NaN, which imshow leaves as the figure's background instead of a black image."""
    n, side = len(images), images.shape[-1]
    rows, cols = grid_shape(n)
    tiles = np.full((rows * cols, side, side), np.nan)
    tiles[:n] = images
    return tiles.reshape(rows, cols, side, side)


def plot_image_grid(images: np.ndarray, path: Path, *, title: str) -> Path:
    """Images (N, side, side) with values in 0..1 in a near-square grid."""
    tiles = tile_grid(images)
    rows, cols = tiles.shape[:2]
    fig, ax = plt.subplots(figsize=(0.6 * cols + 0.6, 0.6 * rows + 0.8))
    show_mosaic(ax, tiles)
    ax.set_title(title, fontsize=8)
    return save_figure(fig, path)
