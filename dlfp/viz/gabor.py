"""The Gabor filter bank as an image grid: one row per orientation, one column per (wavelength, phase)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch

from dlfp.viz import save_figure


def plot_gabor_bank(kernels: torch.Tensor, params: list[tuple[float, float, float]], path: Path) -> Path:
    """kernels (F, k, k) with params (orientation deg, wavelength px, phase deg) in bank order."""
    orientations = sorted({p[0] for p in params})
    columns = sorted({(p[1], p[2]) for p in params})
    fig, axes = plt.subplots(len(orientations), len(columns), squeeze=False,
                             figsize=(1.3 * len(columns) + 0.8, 1.3 * len(orientations) + 0.6))
    limit = float(kernels.abs().max())
    for kernel, (theta, wavelength, phase) in zip(kernels, params):
        ax = axes[orientations.index(theta)][columns.index((wavelength, phase))]
        ax.imshow(kernel.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for row, theta in enumerate(orientations):
        axes[row][0].set_ylabel(f"{theta:.1f}°", fontsize=8)
    for col, (wavelength, phase) in enumerate(columns):
        axes[0][col].set_title(f"λ={wavelength:g}px\nφ={phase:g}°", fontsize=8)
    fig.suptitle(f"Gabor bank: {len(params)} filters ({kernels.shape[-1]}x{kernels.shape[-1]})", fontsize=10)
    return save_figure(fig, path, dpi=110)
