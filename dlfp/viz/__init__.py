"""Every matplotlib figure of the project, and nothing else. Figures render off-screen (Agg)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def save_figure(fig: plt.Figure, path: Path, dpi: int = 120) -> Path:
    """Lay out, write and close ``fig``: closing frees it, since runs draw many figures."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
