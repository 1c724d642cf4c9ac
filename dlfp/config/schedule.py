"""schedule=: the lr of each update as a factor of optimizer.lr (dlfp/engine/schedules.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ScheduleKind(Enum):
    constant = "constant"
    cosine = "cosine"
    linear = "linear"
    multistep = "multistep"
    onecycle = "onecycle"


class MilestoneUnit(Enum):
    epochs = "epochs"
    updates = "updates"


@dataclass
class ScheduleConfig:
    kind: ScheduleKind = ScheduleKind.constant
    warmup_steps: int = 0  # linear warm-up from lr/warmup_steps to lr
    final_lr_fraction: float = 0.0  # lr at the end as a fraction of the peak (cosine, linear)


@dataclass
class MultiStepConfig:
    kind: ScheduleKind = ScheduleKind.multistep
    warmup_steps: int = 0
    milestones: list[int] = field(default_factory=list)  # lr x gamma at each
    unit: MilestoneUnit = MilestoneUnit.epochs
    gamma: float = 0.1


@dataclass
class OneCycleConfig:
    kind: ScheduleKind = ScheduleKind.onecycle
    pct_start: float = 0.3  # fraction of the run spent rising to optimizer.lr
    div_factor: float = 25.0  # starts at lr / div_factor
    final_div_factor: float = 1e4  # ends at lr / (div_factor * final_div_factor)


SCHEMAS = {"schedule": {"schedule": ScheduleConfig, "multistep": MultiStepConfig,
                        "onecycle": OneCycleConfig}}
