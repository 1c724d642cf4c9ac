"""Metric curves read from metrics.jsonl records."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from dlfp.viz import save_figure


def plot_curves(
    series: dict[str, Sequence[dict[str, Any]]],
    metric: str,
    path: Path,
    *,
    title: str,
    ylabel: str | None = None,
    logy: bool = False,
    x: str = "step",
) -> Path:
    """One line per named series of records, ``metric`` against ``x`` (the update step or epoch)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, records in series.items():
        pts = [(r[x], r[metric]) for r in records if metric in r]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, label=label, marker="." if len(xs) < 40 else None)
    ax.set_xlabel("update" if x == "step" else x)
    ax.set_ylabel(ylabel or metric)
    ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return save_figure(fig, path)
