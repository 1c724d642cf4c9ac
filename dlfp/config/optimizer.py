"""optimizer=: torch optimisers, built with hydra.utils.instantiate (``_partial_``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SGDConfig:
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0  # applied to weights only, never to biases or norm parameters


@dataclass
class AdamConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0


@dataclass
class AdamWConfig(AdamConfig):
    _target_: str = "torch.optim.AdamW"
    weight_decay: float = 0.01


SCHEMAS = {"optimizer": {"sgd": SGDConfig, "adam": AdamConfig, "adamw": AdamWConfig}}
