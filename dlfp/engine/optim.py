"""Optimisers built from config, with weight decay on weights only (the lr schedule is in ``schedules``)."""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
GROUP_OPTIONS = ("norm_lr_scale", "norm_weight_decay")  # ours, not the torch optimiser's


def param_groups(model: nn.Module, weight_decay: float, norm_lr_scale: float = 1.0,
                 norm_weight_decay: float = 0.0) -> list[dict]:
    """Weights (matrices, conv kernels) get weight decay; biases do not. Normalisation layers'
    parameters get ``norm_lr_scale`` x the lr and ``norm_weight_decay`` (the fast CIFAR recipe
    trains its BatchNorm shifts 64 times faster; by default they are treated as biases)."""
    norm_ids = {id(p) for m in model.modules() if isinstance(m, NORMS) for p in m.parameters(recurse=False)}
    decay, no_decay, norm = [], [], []
    for p in model.parameters():
        if p.requires_grad:
            (norm if id(p) in norm_ids else decay if p.ndim > 1 else no_decay).append(p)
    if norm_lr_scale == 1.0 and norm_weight_decay == 0.0:
        no_decay, norm = no_decay + norm, []
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if norm:
        groups.append({"params": norm, "weight_decay": norm_weight_decay, "lr_scale": norm_lr_scale})
    return groups


def build_optimizer(cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    options = {k: float(cfg[k]) for k in GROUP_OPTIONS if k in cfg}
    factory = instantiate({k: v for k, v in cfg.items() if k not in GROUP_OPTIONS})
    optimizer = factory(param_groups(model, float(cfg.get("weight_decay", 0.0)), **options))
    for group in optimizer.param_groups:
        group["lr"] *= group.pop("lr_scale", 1.0)
    return optimizer
