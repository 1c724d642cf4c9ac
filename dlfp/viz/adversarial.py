"""The figures of the attack analysis (dlfp/tasks/adversarial.py)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from dlfp.viz import save_figure


def _rgb(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) on [0, 1] -> (H, W, C) for imshow."""
    return x.clamp(0, 1).permute(1, 2, 0).numpy()


def plot_input_gradients(images: torch.Tensor, grads: torch.Tensor, labels: list[str], predicted: list[str],
                         path: Path, *, title: str) -> Path:
    """Columns of images; rows: the image (true -> predicted class), |dL/dx| (max over channels,
    each image scaled to its own maximum), and the signed gradient (grey is 0)."""
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(1.3 * n, 4.4), squeeze=False)
    for i in range(n):
        g = grads[i]
        magnitude = g.abs().amax(0)
        signed = 0.5 + 0.5 * g / g.abs().max().clamp_min(1e-12)
        axes[0, i].imshow(_rgb(images[i]))
        axes[0, i].set_title(f"{labels[i]}\n-> {predicted[i]}", fontsize=6)
        axes[1, i].imshow(magnitude.numpy(), cmap="inferno")
        axes[2, i].imshow(_rgb(signed))
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title, fontsize=8)
    return save_figure(fig, path)


def plot_loss_per_step(losses: torch.Tensor, path: Path, *, eps_255: float) -> Path:
    """I-FGSM: the mean cross-entropy over the attacked images after each step, its interquartile
    band, and a few images' own losses."""
    steps = np.arange(len(losses))
    values = losses.numpy()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i in range(min(12, values.shape[1])):
        ax.plot(steps, values[:, i], color="grey", alpha=0.4, linewidth=0.8)
    q25, q75 = np.percentile(values, [25, 75], axis=1)
    ax.fill_between(steps, q25, q75, alpha=0.25, label="25-75% of images")
    ax.plot(steps, values.mean(1), marker="o", label=f"mean over {values.shape[1]} images")
    ax.set_xlabel("I-FGSM step (0: clean)")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title(f"iterative FGSM, eps = {eps_255:g}/255, {len(steps) - 1} steps")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_progression(frames: list[torch.Tensor], path: Path, *, eps: float) -> Path:
    """Rows of images; columns: clean, after each I-FGSM step, and the final perturbation
    amplified to the full range (grey is 0, the extremes are +-eps)."""
    rows, cols = len(frames[0]), len(frames) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows + 0.4), squeeze=False)
    for r in range(rows):
        for c, frame in enumerate(frames):
            axes[r, c].imshow(_rgb(frame[r]))
            if r == 0:
                axes[r, c].set_title("clean" if c == 0 else f"step {c}", fontsize=7)
        delta = 0.5 + 0.5 * (frames[-1][r] - frames[0][r]) / eps
        axes[r, -1].imshow(_rgb(delta))
        if r == 0:
            axes[r, -1].set_title("perturbation", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(f"I-FGSM progression, eps = {eps * 255:g}/255", fontsize=8)
    return save_figure(fig, path)


def plot_accuracy_vs_eps(eps_255: list[float], curves: dict[str, list[float]], path: Path, *,
                         clean: float, n_images: int) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in curves.items():
        ax.plot(eps_255, values, marker="o", label=name)
    ax.axhline(clean, color="grey", linestyle="--", label="clean")
    ax.set_xscale("log", base=2)
    ax.set_xticks(eps_255, [f"{e:g}" for e in eps_255])
    ax.set_xlabel("eps (x 1/255)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"accuracy under attack ({n_images} test images)")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)
