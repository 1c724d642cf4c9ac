"""What a task receives from the dispatcher: where to write, which device, the metric log."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from dlfp.engine.hardware import Hardware
from dlfp.engine.metrics import MetricLog


@dataclass
class Run:
    cfg: DictConfig
    dir: Path
    hw: Hardware
    metrics: MetricLog

    @property
    def plots_dir(self) -> Path:
        path = self.dir / "plots"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def checkpoint_dir(self) -> Path:
        path = self.dir / "checkpoints"
        path.mkdir(parents=True, exist_ok=True)
        return path
