"""optimizer=: torch optimisers, built with hydra.utils.instantiate (``_partial_``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dlfp.config.checks import Rule, limit


@dataclass
class SGDConfig:
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = limit(0.1, gt=0)
    momentum: float = limit(0.0, ge=0)
    nesterov: bool = False
    weight_decay: float = limit(0.0, ge=0)  # applied to weights only, never to biases or norm parameters
    norm_lr_scale: float = limit(1.0, gt=0)  # lr multiplier of normalisation layers' parameters
    norm_weight_decay: float = limit(0.0, ge=0)  # their weight decay (the fast CIFAR recipe's BN shifts)

    RULES: ClassVar = (Rule(("nesterov", "momentum"), lambda nesterov, momentum: not nesterov or momentum > 0,
                            "Nesterov momentum needs momentum > 0"),)


@dataclass
class AdamConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = limit(1e-3, gt=0)
    betas: list[float] = limit(factory=lambda: [0.9, 0.999], ge=0, lt=1)
    eps: float = limit(1e-8, gt=0)
    weight_decay: float = limit(0.0, ge=0)

    RULES: ClassVar = (Rule(("betas",), lambda betas: len(betas) == 2, "give two betas, [beta1, beta2]"),)


@dataclass
class AdamWConfig(AdamConfig):
    _target_: str = "torch.optim.AdamW"
    weight_decay: float = limit(0.01, ge=0)


SCHEMAS = {"optimizer": {"sgd": SGDConfig, "adam": AdamConfig, "adamw": AdamWConfig}}
