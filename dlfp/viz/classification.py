"""The figures of a classifier training run, the same for the torch and the NumPy network."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from dlfp.viz import save_figure
from dlfp.viz.confusion import plot_confusion
from dlfp.viz.curves import plot_curves


def plot_classification(
    records: Sequence[dict[str, Any]],
    confusions: dict[str, np.ndarray],
    classes: Sequence[str],
    dataset_name: str,
    plots_dir: Path,
) -> list[Path]:
    """train_loss.png, val_loss.png, val_error.png from metrics.jsonl records, and confusion.png.

    The confusion matrix shown is the test split's when there is one, else the validation split's.
    """
    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "val"]
    final = "test" if "test" in confusions else "val"
    return [
        plot_curves({"train": train}, "loss", plots_dir / "train_loss.png",
                    title="training loss", ylabel="cross-entropy (nats)"),
        plot_curves({"val": val}, "loss", plots_dir / "val_loss.png",
                    title="validation loss", ylabel="cross-entropy (nats)"),
        plot_curves({"val": val}, "error", plots_dir / "val_error.png",
                    title="validation error", ylabel="error rate"),
        plot_confusion({f"{dataset_name} {final}": confusions[final]}, classes, plots_dir / "confusion.png"),
    ]


def plot_augmentations(grid: np.ndarray, path: Path, *, title: str) -> Path:
    """grid (rows, cols, H, W, C) of images on 0..1: one image per row, its versions across."""
    rows, cols = grid.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols, 1.1 * rows + 0.4), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            image = grid[r, c]
            axes[r, c].imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
            axes[r, c].axis("off")
    fig.suptitle(title, fontsize=8)
    return save_figure(fig, path)
