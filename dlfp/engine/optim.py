"""Optimisers built from config: parameters routed to param groups and optimisers by rule
(``optimizer.routes``; docs/design.md, "Optimizers"), weight decay on weights only by default. The
lr schedule is in ``schedules``; the update (``updates.TorchUpdate``) steps every optimiser."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from dlfp.config.checks import read_entry, read_mapping
from dlfp.config.optimizer import OPTIMIZERS, ParamsRule, RouteConfig
from dlfp.errors import DlfpError

NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.RMSNorm)
KINDS: dict[str, tuple[type, ...]] = {  # params.module: a kind, or else the name of a class
    "norm": NORMS, "embedding": (nn.Embedding, nn.EmbeddingBag), "linear": (nn.Linear,),
    "conv": (nn.modules.conv._ConvNd,),
}
SHAPES = {"vector": lambda ndim: ndim <= 1, "matrix": lambda ndim: ndim == 2,
          "filter": lambda ndim: ndim >= 3}
OURS = ("routes",)  # keys of the optimizer node that are not the torch optimiser's


@dataclasses.dataclass(frozen=True)
class Param:
    """A trainable parameter, its qualified name and the module that holds it."""

    name: str
    tensor: nn.Parameter
    module: nn.Module

    def decays(self) -> bool:
        """The default rule: weights (matrices, filters) decay; vectors and norm layers' do not."""
        return self.tensor.ndim > 1 and not isinstance(self.module, NORMS)


def trainable(model: nn.Module) -> list[Param]:
    """``model``'s trainable parameters in ``parameters()`` order, each once (a shared one under
    its first name)."""
    return [Param(name, p, model.get_submodule(name.rpartition(".")[0]))
            for name, p in model.named_parameters() if p.requires_grad]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """The default rule's groups: weights (matrices, conv kernels) with ``weight_decay``, then the
    rest (biases, norm layers' parameters) without; an empty group is left out."""
    return _groups(trainable(model), weight_decay)


def _groups(params: list[Param], weight_decay: float, lr_scale: float = 1.0) -> list[dict]:
    decay = [p.tensor for p in params if p.decays()]
    rest = [p.tensor for p in params if not p.decays()]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return [{**group, "lr_scale": lr_scale} if lr_scale != 1.0 else group
            for group in groups if group["params"]]


def matches(rule: ParamsRule, param: Param) -> bool:
    """Whether every rule given (shape, name, module) holds for ``param``."""
    kinds = KINDS.get(rule.module or "")
    return ((rule.shape is None or any(SHAPES[shape](param.tensor.ndim) for shape in rule.shape))
            and (rule.name is None or re.search(rule.name, param.name) is not None)
            and (rule.module is None or (isinstance(param.module, kinds) if kinds else
                                         rule.module in {c.__name__ for c in type(param.module).__mro__})))


def build_optimizer(cfg: DictConfig | Any, model: nn.Module
                    ) -> torch.optim.Optimizer | list[torch.optim.Optimizer]:
    """The optimiser of ``cfg`` (an optimizer node) over ``model``'s trainable parameters: each
    route of ``cfg.routes`` takes the parameters its rule matches (first match wins) into param
    groups with its lr scale and weight decay, in its own optimiser when it names one; the rest go
    to ``cfg``'s optimiser by the default rule. One optimiser, or a list (``cfg``'s first) when
    routes name optimisers of their own."""
    options = _options(cfg)
    routes = [read_mapping(entry, RouteConfig, f"optimizer.routes[{i}]", "route")
              for i, entry in enumerate(options["routes"] or [])]
    left, main_groups, own = trainable(model), [], []
    for i, route in enumerate(routes):
        taken = [p for p in left if matches(route.params, p)]
        if not taken:
            raise DlfpError(_unmatched(i, route.params, model))
        left = [p for p in left if not any(p.tensor is t.tensor for t in taken)]
        if route.optimizer is None:
            main_groups += _route_groups(taken, route, options["weight_decay"])
        else:
            path = f"optimizer.routes[{i}].optimizer"
            route_options = _options(read_entry(route.optimizer, OPTIMIZERS, path, "optimizer")[1])
            own.append(_optimizer(route_options, _route_groups(taken, route, route_options["weight_decay"])))
    main_groups = _groups(left, options["weight_decay"]) + main_groups
    optimizers = ([_optimizer(options, main_groups)] if main_groups else []) + own
    return optimizers[0] if len(optimizers) == 1 else optimizers


def _route_groups(params: list[Param], route: RouteConfig, weight_decay: float) -> list[dict]:
    if route.weight_decay is None:
        return _groups(params, weight_decay, route.lr_scale)
    return [{"params": [p.tensor for p in params], "weight_decay": route.weight_decay,
             "lr_scale": route.lr_scale}]


def _optimizer(options: dict, groups: list[dict]) -> torch.optim.Optimizer:
    """A torch optimiser over ``groups``, each group's lr its ``lr_scale`` x the optimiser's."""
    optimizer = instantiate({k: v for k, v in options.items() if k not in OURS})(groups)
    for group in optimizer.param_groups:
        group["lr"] *= group.pop("lr_scale", 1.0)
    return optimizer


def _options(node: Any) -> dict:
    """An optimizer node (config or schema object) as a plain dict."""
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    return dataclasses.asdict(node)


def _unmatched(i: int, rule: ParamsRule, model: nn.Module) -> str:
    given = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(rule).items() if v is not None)
    classes = sorted({type(p.module).__name__ for p in trainable(model)})
    return (f"optimizer.routes[{i}].params ({given}) matches no trainable parameter of "
            f"{type(model).__name__} that an earlier route has not taken (module kinds: {', '.join(KINDS)}; "
            f"its parameters' modules: {', '.join(classes)}); correct the rule or remove the route")
