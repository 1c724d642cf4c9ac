"""optimizer=: torch optimisers, built with hydra.utils.instantiate (``_partial_``), and the routes
that give chosen parameters their own lr scale, weight decay or optimiser (dlfp/engine/optim.py;
docs/design.md, "Optimizers")."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from dlfp.config.checks import Rule, choice, entries, limit

OPTIMIZERS: dict[str, type] = {}  # name -> schema, filled below: a route's optimizer is one of them


class Shape(StrEnum):
    vector = "vector"  # ndim <= 1: biases, norm scales and shifts
    matrix = "matrix"  # ndim 2: linear weights, embeddings
    filter = "filter"  # ndim >= 3: convolution kernels


def _is_regex(pattern: str | None) -> bool:
    try:
        re.compile(pattern or "")
    except re.error:
        return False
    return True


@dataclass
class ParamsRule:
    """Which parameters a route takes: all of the given rules hold (at least one is given)."""

    shape: list[Shape] | None = None  # e.g. [matrix, filter]
    name: str | None = None  # a regular expression searched in the qualified name, e.g. 'bias$', '^head\.'
    module: str | None = None  # the owning module: a kind (norm, embedding, linear, conv) or a class name

    RULES: ClassVar = (
        Rule(("shape", "name", "module"), lambda *rules: any(r is not None for r in rules),
             "give at least one rule (shape, name or module)"),
        Rule(("name",), _is_regex, "is not a regular expression"),
    )


@dataclass
class RouteConfig:
    """Parameters that ``params`` matches (and no earlier route took) go to their own param group."""

    params: ParamsRule = field(default_factory=ParamsRule)
    lr_scale: float = limit(1.0, gt=0)  # x the lr of the route's optimizer
    weight_decay: float | None = limit(None, ge=0)  # null: the optimizer's, on matrices and filters only
    optimizer: Any = choice(OPTIMIZERS, "optimizer")  # null: the main one; or {name: adam, lr: ...}

    RULES: ClassVar = (Rule(("optimizer",), lambda node: node is None or "routes" not in node,
                            "a route's optimizer takes no routes of its own; route in optimizer.routes"),)


@dataclass
class SGDConfig:
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = limit(0.1, gt=0)
    momentum: float = limit(0.0, ge=0)
    nesterov: bool = False
    weight_decay: float = limit(0.0, ge=0)  # on matrices and filters outside norm layers, unless routed
    routes: list[Any] = entries(RouteConfig, "route")  # first match wins; see RouteConfig

    RULES: ClassVar = (Rule(("nesterov", "momentum"), lambda nesterov, momentum: not nesterov or momentum > 0,
                            "Nesterov momentum needs momentum > 0"),)


@dataclass
class AdamConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = limit(1e-3, gt=0)
    betas: list[float] = limit(factory=lambda: [0.9, 0.999], ge=0, lt=1)
    eps: float = limit(1e-8, gt=0)
    weight_decay: float = limit(0.0, ge=0)  # on matrices and filters outside norm layers, unless routed
    routes: list[Any] = entries(RouteConfig, "route")  # first match wins; see RouteConfig

    RULES: ClassVar = (Rule(("betas",), lambda betas: len(betas) == 2, "give two betas, [beta1, beta2]"),)


@dataclass
class AdamWConfig(AdamConfig):
    _target_: str = "torch.optim.AdamW"
    weight_decay: float = limit(0.01, ge=0)


@dataclass
class MuonConfig:
    """Muon (Jordan et al. 2024): Nesterov momentum orthogonalised by a Newton–Schulz iteration,
    for matrices and convolution filters only (dlfp/engine/muon.py: torch.optim.Muon's step, a
    filter seen as out × in·k·k); route vectors to another optimizer."""

    _target_: str = "dlfp.engine.muon.Muon"
    _partial_: bool = True
    lr: float = limit(0.02, gt=0)  # torch's update is scaled by sqrt(max(1, out / in)) on top
    momentum: float = limit(0.95, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = limit(0.0, ge=0)  # decoupled: each step multiplies a weight by 1 - lr x decay
    ns_steps: int = limit(5, ge=1, lt=100)  # Newton–Schulz iterations (airbench94_muon: 3)
    renormalize: bool = False  # airbench94_muon: each step first rescales a weight to norm sqrt(out)
    routes: list[Any] = entries(RouteConfig, "route")  # first match wins; see RouteConfig


OPTIMIZERS.update(sgd=SGDConfig, adam=AdamConfig, adamw=AdamWConfig, muon=MuonConfig)
SCHEMAS = {"optimizer": OPTIMIZERS}
