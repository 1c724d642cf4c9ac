"""What a task receives from the runner: where to write, which device, the metric log.

A task returns deterministic metrics; wall-clock timings go into ``timings`` so that two runs with
the same seed have identical ``summary.json["metrics"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from dlfp.engine.hardware import Hardware
from dlfp.engine.metrics import MetricLog


@dataclass
class Run:
    cfg: DictConfig
    dir: Path
    hw: Hardware
    metrics: MetricLog
    timings: dict[str, float] = field(default_factory=dict)  # seconds; kept out of metrics
    # how this process runs a whole experiment (the runner's run_experiment), for a task that runs
    # others (compare) without importing the runner that imports it
    run_experiment: Callable[[DictConfig, Path, list[str]], dict[str, Any]] | None = None

    @property
    def plots_dir(self) -> Path:
        path = self.dir / "plots"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def checkpoint_dir(self) -> Path:
        """Created by the first checkpoint written, so a run that fails earlier leaves no empty folder."""
        return self.dir / "checkpoints"
