"""Optimisers built from config, with weight decay on weights only (the lr schedule is in ``schedules``)."""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn


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
