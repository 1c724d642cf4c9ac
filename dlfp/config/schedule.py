"""schedule=: the lr of each update as a factor of optimizer.lr (dlfp/engine/schedules.py)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dlfp.config.checks import limit


class ScheduleKind(StrEnum):
    constant = "constant"
    cosine = "cosine"
    linear = "linear"
    multistep = "multistep"
    onecycle = "onecycle"


class Anneal(StrEnum):
    cos = "cos"
    linear = "linear"


class MilestoneUnit(StrEnum):
    epochs = "epochs"
    updates = "updates"


@dataclass
class ScheduleConfig:
    kind: ScheduleKind = ScheduleKind.constant
    warmup_steps: int = limit(0, ge=0)  # linear warm-up from lr/warmup_steps to lr
    final_lr_fraction: float = limit(0.0, ge=0, le=1)  # final lr / peak lr (cosine, linear)


@dataclass
class MultiStepConfig:
    kind: ScheduleKind = ScheduleKind.multistep
    warmup_steps: int = limit(0, ge=0)
    milestones: list[int] = limit(factory=list, ge=0)  # lr x gamma at each
    unit: MilestoneUnit = MilestoneUnit.epochs
    gamma: float = limit(0.1, gt=0)


@dataclass
class OneCycleConfig:
    kind: ScheduleKind = ScheduleKind.onecycle
    pct_start: float = limit(0.3, gt=0, lt=1)  # fraction of the run spent rising to optimizer.lr
    div_factor: float = limit(25.0, gt=0)  # starts at lr / div_factor
    final_div_factor: float = limit(1e4, gt=0)  # ends at lr / (div_factor * final_div_factor)
    anneal: Anneal = Anneal.cos  # shape of both phases (torch's anneal_strategy)


SCHEMAS = {"schedule": {"schedule": ScheduleConfig, "multistep": MultiStepConfig,
                        "onecycle": OneCycleConfig}}
