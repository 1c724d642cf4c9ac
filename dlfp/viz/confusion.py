"""Confusion matrices."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from dlfp.viz import save_figure


def draw_confusion(ax: plt.Axes, matrix: np.ndarray, classes: Sequence[str], title: str) -> None:
    """Counts with true class on rows, predicted on columns; the title carries the accuracy."""
    acc = np.trace(matrix) / max(1, matrix.sum())
    ax.imshow(matrix, cmap="Blues")
    ax.set_title(f"{title} (accuracy {acc:.2%})")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, classes, rotation=90 if max(map(len, classes)) > 2 else 0)
    ax.set_yticks(ticks, classes)
    threshold = matrix.max() / 2
    for i, j in np.ndindex(matrix.shape):
        if matrix[i, j]:
            color = "white" if matrix[i, j] > threshold else "black"
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)


def plot_confusion(
    matrices: dict[str, np.ndarray], classes: Sequence[str], path: Path
) -> Path:
    """One panel per named matrix, side by side."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(5.5 * len(matrices), 5), squeeze=False)
    for ax, (title, matrix) in zip(axes[0], matrices.items()):
        draw_confusion(ax, matrix, classes, title)
    return save_figure(fig, path)
