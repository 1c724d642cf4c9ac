"""VAE figures: ELBO terms and log-likelihood curves, reconstructions, samples, latent traversal.

Log-likelihoods and KL are per image in nats, as the task logs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from dlfp.viz import save_figure
from dlfp.viz.mosaic import show_mosaic

NATS = "nats per image"


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["step"], r[key]) for r in records if key in r]
    if not pts:
        return np.zeros(0), np.zeros(0)
    steps, values = zip(*pts)
    return np.asarray(steps), np.asarray(values, dtype=float)


def _smoothed(values: np.ndarray) -> np.ndarray:
    """Moving average over ~1% of the points, so per-update noise does not hide the trend."""
    window = max(1, len(values) // 100)
    if window == 1:
        return values
    kernel = np.ones(window) / window
    head = np.cumsum(values[: window - 1]) / np.arange(1, window)  # shorter windows at the start
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def _plot_noisy(ax: plt.Axes, steps: np.ndarray, values: np.ndarray, label: str, color: str) -> None:
    if len(values) > 200:
        ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.5)
        ax.plot(steps, _smoothed(values), color=color, label=f"{label}, moving average")
    else:
        ax.plot(steps, values, color=color, label=label)


def plot_elbo_terms(train: Sequence[dict[str, Any]], path: Path) -> Path:
    """Reconstruction log-likelihood and KL of every logged training update, side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title, color in (
        (axes[0], "recon_ll", "reconstruction  E_q[log p(x|z)]", "C0"),
        (axes[1], "kl", "KL(q(z|x) || p(z))", "C3"),
    ):
        _plot_noisy(ax, *_series(train, key), label="training batch", color=color)
        ax.set_title(title)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.set_xlabel("update")
        ax.set_ylabel(NATS)
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path)


def plot_train_vs_val_ll(
    train: Sequence[dict[str, Any]], val: Sequence[dict[str, Any]], path: Path
) -> Path:
    """The training-batch ELBO of every update against the validation ELBO of each evaluation."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _plot_noisy(ax, *_series(train, "elbo"), label="train ELBO (batch)", color="C0")
    steps, values = _series(val, "elbo")
    ax.plot(steps, values, color="C1", marker="." if len(steps) < 60 else None, label="validation ELBO")
    ax.set_xlabel("update")
    ax.set_ylabel(f"ELBO, {NATS}")
    ax.set_title("log-likelihood lower bound: train vs validation")
    finite = np.concatenate([_series(train, "elbo")[1], values])
    if len(finite) > 10:  # the first updates sit far below; keep the interesting range in view
        low, high = np.percentile(finite, [2, 100])
        ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_reconstructions(originals: np.ndarray, reconstructions: np.ndarray, path: Path) -> Path:
    """One row per image (N, side, side): the original on the left, its reconstruction on the right."""
    pairs = np.stack([originals, reconstructions], axis=1)
    fig, ax = plt.subplots(figsize=(3.0, 0.6 * len(pairs) + 0.8))
    pitch = show_mosaic(ax, pairs)
    ax.set_xticks([0.5 + pitch / 2, 0.5 + 1.5 * pitch], ["original", "reconstructed"], fontsize=7)
    ax.xaxis.tick_top()
    ax.set_xlabel("reconstruction = Bernoulli means\ndecoded from the posterior mean", fontsize=7)
    return save_figure(fig, path)


def plot_latent_traversal(
    grid: np.ndarray, values: Sequence[float], dims: Sequence[int], path: Path
) -> Path:
    """grid (rows, cols, side, side): row r sets z[dims[0]] += values[r], column c z[dims[1]] += values[c]."""
    rows, cols = grid.shape[:2]
    fig, ax = plt.subplots(figsize=(0.6 * cols + 1.4, 0.6 * rows + 1.4))
    pitch = show_mosaic(ax, grid)
    centres = [0.5 + pitch * (i + 0.5) for i in range(max(rows, cols))]
    ax.set_yticks(centres[:rows], [f"{v:+.1f}" for v in values[:rows]], fontsize=7)
    ax.set_xticks(centres[:cols], [f"{v:+.1f}" for v in values[:cols]], fontsize=7)
    ax.set_ylabel(f"z[{dims[0]}] offset")
    ax.set_xlabel(f"z[{dims[1]}] offset")
    ax.set_title("decoded Bernoulli means around the mean posterior mean\n"
                 "(other latent dimensions held there)", fontsize=8)
    return save_figure(fig, path)
