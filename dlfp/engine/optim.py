"""Optimiser with weight decay on weights only, and the learning-rate schedules."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from dlfp.errors import DlfpError


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weights (matrices, conv kernels) get weight decay; biases and norm parameters (1-D) do not."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    factory = instantiate(cfg)
    return factory(param_groups(model, float(cfg.get("weight_decay", 0.0))))


def lr_factor(cfg: DictConfig, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak lr at each update: linear warm-up, then constant/cosine/linear."""
    kind = str(getattr(cfg.kind, "value", cfg.kind))
    warmup, final = int(cfg.warmup_steps), float(cfg.final_lr_fraction)
    if warmup >= total_steps and warmup > 0:
        raise DlfpError(f"schedule.warmup_steps={warmup} must be below the {total_steps} updates")

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if kind == "cosine":
            return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))
        return final + (1 - final) * (1 - progress)

    return factor


def build_schedule(
    cfg: DictConfig, optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, total_steps))
