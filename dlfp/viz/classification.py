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
    """loss.png (training and every evaluated split), error.png (evaluated splits) and lr.png
    against epoch, from metrics.jsonl records, and confusion.png.

    The confusion matrix shown is the test split's when there is one, else the validation split's.
    """
    by_split: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_split.setdefault(r["split"], []).append(r)
    evaluated = {k: v for k, v in by_split.items() if k != "train"}
    train = {"train": by_split.get("train", [])}
    final = "test" if "test" in confusions else "val"
    return [
        plot_curves({**train, **evaluated}, "loss", plots_dir / "loss.png", x="epoch",
                    title="cross-entropy", ylabel="cross-entropy (nats)", logy=True),
        plot_curves(evaluated, "error", plots_dir / "error.png", x="epoch", title="error",
                    ylabel="error rate"),
        plot_curves(train, "lr", plots_dir / "lr.png", x="epoch", title="learning rate", ylabel="lr"),
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
