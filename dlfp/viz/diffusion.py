"""DDPM figures: the forward noising, the loss per timestep, and the denoising trajectory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from dlfp.viz import save_figure
from dlfp.viz.curves import plot_curves
from dlfp.viz.mosaic import show_mosaic


def _grid_figure(grid: np.ndarray, labels: Sequence[str], title: str, path: Path) -> Path:
    """Rows of images (rows, cols, side, side) on 0..1 with one label per column."""
    rows, cols = grid.shape[:2]
    fig, ax = plt.subplots(figsize=(0.75 * cols + 0.6, 0.75 * rows + 0.9))
    pitch = show_mosaic(ax, grid)
    ax.set_xticks([0.5 + pitch * (i + 0.5) for i in range(cols)], labels, fontsize=7)
    ax.xaxis.tick_top()
    ax.set_xlabel(title, fontsize=8)
    return save_figure(fig, path)


def plot_noising(grid: np.ndarray, steps: Sequence[int], path: Path) -> Path:
    """q(x_t | x_0) for a few images (rows) at the timesteps ``steps`` (columns)."""
    title = "forward process: x_t ~ q(x_t | x_0), one noise draw"
    return _grid_figure(grid, [f"t={t}" for t in steps], title, path)


def plot_denoising(grid: np.ndarray, steps: Sequence[int], path: Path, sampler: str | None = None) -> Path:
    """Sampling trajectories: each row one sample, from x_{T-1} (pure noise) to the sample (t = -1);
    ``sampler`` (e.g. "DDIM, 100 steps, eta 0") goes into the title."""
    labels = ["sample" if t < 0 else f"t={t}" for t in steps]
    title = "reverse process: noise -> sample" + (f" ({sampler})" if sampler else "")
    return _grid_figure(grid, labels, title, path)


def plot_loss_per_timestep(records: Sequence[dict[str, Any]], plots_dir: Path) -> tuple[Path, Path]:
    """loss.png: the training loss and the validation loss (mean over timestep buckets) against
    updates; loss_per_timestep.png: the validation loss of each timestep bucket at the last
    evaluation, on a log scale."""
    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] in ("val", "val_ema")]
    series = {"train (batch, t uniform)": train}
    for split in ("val", "val_ema"):
        chosen = [r for r in val if r["split"] == split]
        if chosen:
            series[f"{split.replace('_', ' ')} (mean over t buckets)"] = chosen
    curve = plot_curves(series, "loss", plots_dir / "loss.png", title="noise-prediction MSE", logy=True)
    last = [r for r in val if r["step"] == max(r["step"] for r in val)] if val else []
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in last:
        points = sorted((int(k[6:]), v) for k, v in r.items() if k.startswith("loss_t"))
        if points:
            ts, losses = zip(*points)
            ax.plot(ts, losses, marker="o", label=r["split"].replace("_", " "))
    ax.set_xlabel("timestep t")
    ax.set_ylabel("noise-prediction MSE")
    ax.set_yscale("log")
    ax.set_title(f"loss per timestep bucket (update {last[0]['step'] if last else 0})")
    ax.grid(alpha=0.3)
    if len(last) > 1:
        ax.legend()
    return curve, save_figure(fig, plots_dir / "loss_per_timestep.png")


def display_images(x: torch.Tensor) -> np.ndarray:
    """Samples in [-1, 1] (N, 1, H, W) as (N, H, W) arrays on 0..1 for the figures."""
    return ((x.float().cpu().clamp(-1, 1) + 1) / 2).squeeze(1).numpy()
