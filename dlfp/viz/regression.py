"""Figures of the regression study: one fit, the errors against n, a training set."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from dlfp.viz import save_figure


def _shade_outside(ax, support: tuple[float, float], right: float) -> None:
    if right > support[1]:
        ax.axvspan(support[1], right, color="0.85", zorder=0, label="outside the data's support")


def plot_fit(path: Path, grid, target, fit, x_train, y_train, *, support: tuple[float, float],
             title: str) -> Path:
    """f* and the network on the grid, the training points, the extrapolation region shaded."""
    grid, target, fit = np.asarray(grid), np.asarray(target), np.asarray(fit)
    fig, ax = plt.subplots(figsize=(7, 4))
    _shade_outside(ax, support, float(grid[-1]))
    ax.plot(grid, target, color="k", lw=1.2, label="f*(x)")
    ax.plot(grid, fit, color="tab:red", lw=1.2, zorder=4, label="network")
    ax.scatter(np.asarray(x_train), np.asarray(y_train), s=10 if len(x_train) <= 100 else 3,
               color="tab:blue", zorder=3, label=f"training points (n={len(x_train)})")
    # keep f* readable when the fit shoots off outside the support; the title gives the errors
    limit = min(4.0, max(1.5, 1.1 * float(np.abs(fit).max())))
    ax.set_ylim(-limit, limit)
    return _save_xy_figure(fig, ax, path, grid, title)


def plot_delta_vs_n(path: Path, n: Sequence[float],
                    curves: dict[str, tuple[Sequence[float], Sequence[float | None]]], *, title: str) -> Path:
    """One line per error measure, mean over trials against n on log axes, a band of +-1 std where
    there is one (a std of None: a single trial, no band)."""
    n = np.asarray(n, dtype=float)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (mean, std) in curves.items():
        mean = np.asarray(mean, dtype=float)
        std = np.array([np.nan if s is None else s for s in std], dtype=float)
        line, = ax.plot(n, mean, marker="o", ms=3, label=label)
        low = np.clip(mean - std, mean * 0.05, None)  # a log axis cannot show values <= 0
        ax.fill_between(n, low, mean + std, where=np.isfinite(std), color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training set size n")
    ax.set_ylabel("max |f(x) - f*(x)| on the grid")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return save_figure(fig, path)


def plot_dataset(path: Path, grid, target, x_train, y_train, *, support: tuple[float, float],
                 title: str) -> Path:
    """A training set on top of the function it samples."""
    grid = np.asarray(grid)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    _shade_outside(ax, support, float(grid[-1]))
    ax.plot(grid, np.asarray(target), color="k", lw=1.0, label="f*(x)")
    ax.scatter(np.asarray(x_train), np.asarray(y_train), s=12, color="tab:blue", zorder=3,
               label=f"training set (n={len(x_train)})")
    return _save_xy_figure(fig, ax, path, grid, title)


def _save_xy_figure(fig, ax, path: Path, grid: np.ndarray, title: str) -> Path:
    """The finish shared by the f*-and-points figures: x spans the grid, labels, legend, save."""
    ax.set_xlim(float(grid[0]), float(grid[-1]))
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower left", fontsize=8)
    return save_figure(fig, path, dpi=110)
