"""Optimizers built from config (dlfp/engine/optim.py): the default weight-decay rule, parameters
routed by shape, name and module to param groups and optimizers of their own, and the update that
steps several optimizers (crash-and-resume with two of them is in test_driver.py)."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import compose_config, without_hydra
from omegaconf import OmegaConf
from torch import nn
from torch.nn import functional as F

from dlfp.config.checks import config_problems
from dlfp.config.train import TrainLoopConfig
from dlfp.engine.hardware import setup_hardware
from dlfp.engine.optim import build_optimizer, param_groups
from dlfp.engine.updates import TorchUpdate
from dlfp.errors import DlfpError
from dlfp.models import build_model

CPU = OmegaConf.create({"device": "cpu", "amp_dtype": None, "compile": False, "channels_last": False,
                        "threads": None, "deterministic": True})


class _Net(nn.Module):
    """Filters, a norm layer, a head and an embedding: a parameter of every kind a rule can name."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.norm = nn.BatchNorm2d(2)
        self.head = nn.Linear(2, 3)
        self.embed = nn.Embedding(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.conv(x)).mean((2, 3))) + self.embed.weight.mean()

    def loss(self, batch: dict) -> torch.Tensor:
        return F.cross_entropy(self(batch["x"]), batch["y"])


def _cfg(routes: list | None = None, **options) -> OmegaConf:
    """An SGD node as the schema gives it (weight decay 0 unless given)."""
    return OmegaConf.create({"_target_": "torch.optim.SGD", "_partial_": True, "weight_decay": 0.0,
                             "routes": routes or [], **options})


def _names(model: nn.Module, groups: list[dict]) -> list[list[str]]:
    name = {id(p): n for n, p in model.named_parameters()}
    return [[name[id(p)] for p in group["params"]] for group in groups]


def test_weight_decay_goes_to_weights_only() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 3))
    decay, no_decay = param_groups(model, 5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert {p.ndim for p in decay["params"]} == {2, 4}
    assert len(no_decay["params"]) == 4  # conv bias, BN weight and bias, linear bias


def test_a_norm_route_makes_the_groups_of_the_old_norm_keys() -> None:
    """cifar_fast's BatchNorm rule as a route: weights, then biases, then the norm parameters at
    64x the lr with their own decay, as the two keys it replaces grouped them."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 3))
    cfg = _cfg(lr=0.5, momentum=0.9, weight_decay=1e-3,
               routes=[{"params": {"module": "norm"}, "lr_scale": 64.0, "weight_decay": 2e-5}])
    weights, biases, norms = build_optimizer(cfg, model).param_groups
    assert _names(model, [weights, biases, norms]) == [["0.weight", "3.weight"], ["0.bias", "3.bias"],
                                                       ["1.weight", "1.bias"]]
    assert (weights["lr"], weights["weight_decay"]) == (0.5, 1e-3)
    assert (biases["lr"], biases["weight_decay"]) == (0.5, 0.0)
    assert (norms["lr"], norms["weight_decay"]) == (32.0, 2e-5) and "lr_scale" not in norms


@pytest.mark.parametrize(("rule", "taken"), [
    ({"shape": ["filter"]}, ["conv.weight"]),
    ({"shape": ["matrix"]}, ["head.weight", "embed.weight"]),
    ({"shape": ["matrix", "filter"]}, ["conv.weight", "head.weight", "embed.weight"]),
    ({"shape": ["vector"]}, ["conv.bias", "norm.weight", "norm.bias", "head.bias"]),
    ({"name": "bias$"}, ["conv.bias", "norm.bias", "head.bias"]),
    ({"name": r"^head\."}, ["head.weight", "head.bias"]),
    ({"module": "norm"}, ["norm.weight", "norm.bias"]),
    ({"module": "embedding"}, ["embed.weight"]),
    ({"module": "conv"}, ["conv.weight", "conv.bias"]),
    ({"module": "_NormBase"}, ["norm.weight", "norm.bias"]),  # a class, or a base class, by name
    ({"module": "linear", "shape": ["vector"]}, ["head.bias"]),  # every rule given must hold
])
def test_routing_rules_pick_their_parameters(rule: dict, taken: list[str]) -> None:
    model = _Net()
    groups = build_optimizer(_cfg(lr=0.1, routes=[{"params": rule, "weight_decay": 0.0}]), model).param_groups
    assert sorted(_names(model, groups[-1:])[0]) == sorted(taken)
    assert sum(len(g["params"]) for g in groups) == 7  # every parameter, once


def test_the_first_matching_route_wins_and_a_route_with_nothing_left_is_refused() -> None:
    model = _Net()
    routes = [{"params": {"name": "bias$"}, "lr_scale": 2.0}, {"params": {"module": "norm"}, "lr_scale": 3.0}]
    *_, biases, norm = build_optimizer(_cfg(lr=0.1, routes=routes), model).param_groups
    assert _names(model, [biases, norm]) == [["conv.bias", "norm.bias", "head.bias"], ["norm.weight"]]
    routes = [{"params": {"shape": ["vector"]}}, {"params": {"module": "norm"}}]
    with pytest.raises(DlfpError, match=r"^optimizer.routes\[1\].params \(module=norm\) matches no trainable "
                                        r"parameter of _Net that an earlier route has not taken"):
        build_optimizer(_cfg(lr=0.1, routes=routes), model)
    with pytest.raises(DlfpError, match=r"optimizer.routes\[0\].params \(module=Embeding\) matches no .* "
                                        r"its parameters' modules: BatchNorm2d, Conv2d, Embedding, Linear"):
        build_optimizer(_cfg(lr=0.1, routes=[{"params": {"module": "Embeding"}}]), model)


@pytest.mark.parametrize(("routes", "problem"), [
    ("[{params:{modul:norm}}]",
     "optimizer.routes[0].params.modul is not a setting of optimizer.routes[0].params (known: shape, name, "
     "module); remove it"),
    ("[{params:{shape:[filter]},lr_scal:2}]", "optimizer.routes[0].lr_scal is not a setting of a route"),
    ("[{params:{module:norm},lr_scale:-2}]", "optimizer.routes[0].lr_scale=-2.0 must be > 0"),
    ("[{params:{shape:[filtr]}}]",
     "optimizer.routes[0].params.shape=['filtr'] must be a list of one of vector, matrix, filter or null"),
    ("[{params:{}}]", "give at least one rule (shape, name or module)"),
    ("[{params:{name:'(a'}}]", "optimizer.routes[0].params.name=(a: is not a regular expression"),
    ("[{params:{shape:[filter]},optimizer:{name:adam,moment:3}}]",
     "optimizer.routes[0].optimizer.moment is not an option of adam"),
    ("[norm]", "optimizer.routes[0]=norm is no route; write a mapping of its settings"),
])
def test_a_bad_route_is_one_problem_naming_it(routes: str, problem: str) -> None:
    problems = config_problems(without_hydra(compose_config([f"optimizer.routes={routes}"])))
    assert len(problems) == 1 and problem in problems[0]


@pytest.mark.parametrize("scaled", [False, True])
def test_two_optimizers_step_as_two_hand_written_steps(scaled: bool) -> None:
    """SGD for the filters, conv bias and (at 4x the lr) the norm layer, Adam for the head: one
    update, scheduled and clipped over all parameters, equals the two torch optimisers applied by
    hand to the two sets; also through the AMP loss scaler (a power of two: exact), which unscales
    each optimiser's gradients once before the clipping."""
    torch.manual_seed(0)
    model = _Net().double()
    reference = copy.deepcopy(model)
    routes = [{"params": {"module": "norm"}, "lr_scale": 4.0},
              {"params": {"name": r"^(head|embed)\."},
               "optimizer": {"name": "adam", "lr": 0.01, "weight_decay": 0.1}}]
    cfg = _cfg(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2, routes=routes)
    train_cfg = OmegaConf.merge(OmegaConf.structured(TrainLoopConfig), {"grad_clip": 0.5})
    update = TorchUpdate(model, build_optimizer(cfg, model), setup_hardware(CPU), train_cfg)
    if scaled:
        update.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    r = reference
    sgd = torch.optim.SGD([{"params": [r.conv.weight], "weight_decay": 1e-2}, {"params": [r.conv.bias]},
                           {"params": [r.norm.weight, r.norm.bias], "lr": 0.4}],
                          lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.0)
    adam = torch.optim.Adam([{"params": [r.head.weight, r.embed.weight], "weight_decay": 0.1},
                             {"params": [r.head.bias]}], lr=0.01, weight_decay=0.0)
    peaks = [group["lr"] for opt in (sgd, adam) for group in opt.param_groups]
    for factor in (1.0, 0.5, 0.25):
        gen = torch.Generator().manual_seed(int(factor * 4))
        batch = {"x": torch.randn(4, 1, 5, 5, generator=gen, dtype=torch.float64),
                 "y": torch.tensor([0, 1, 2, 1])}
        update.set_lr(factor)
        loss, _ = update(batch)
        for group, peak in zip([g for opt in (sgd, adam) for g in opt.param_groups], peaks):
            group["lr"] = peak * factor
        sgd.zero_grad(), adam.zero_grad()
        by_hand = r.loss(batch)
        by_hand.backward()
        assert torch.equal(loss, by_hand.detach())
        nn.utils.clip_grad_norm_(r.parameters(), 0.5)
        sgd.step(), adam.step()
        assert update.lr == 0.1 * factor  # the main optimizer's first group
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p, q), name
    assert [len(s["state"]) for s in update.state_dict()["optimizers"]] == [4, 3]


def test_the_hand_written_step_refuses_several_optimizers() -> None:
    model = _Net()
    optimizers = build_optimizer(_cfg(lr=0.1, routes=[{"params": {"module": "linear"},
                                                       "optimizer": {"name": "adam"}}]), model)
    with pytest.raises(DlfpError, match="hand-written update steps one optimizer"):
        TorchUpdate(model, optimizers, setup_hardware(CPU), OmegaConf.structured(TrainLoopConfig),
                    manual_step=lambda batch: torch.zeros(()))


def test_a_checkpoint_restores_each_optimizer_and_refuses_another_count() -> None:
    model, hw, train_cfg = _Net(), setup_hardware(CPU), OmegaConf.structured(TrainLoopConfig)
    routes = [{"params": {"module": "linear"}, "optimizer": {"name": "adam"}}]
    two = TorchUpdate(model, build_optimizer(_cfg(lr=0.1, routes=routes), model), hw, train_cfg)
    one = TorchUpdate(model, torch.optim.SGD(model.parameters(), lr=0.1), hw, train_cfg)
    with pytest.raises(DlfpError, match=r"holds the state of 1 optimizer\(s\), this run builds 2; "
                                        "resume with the optimizer.routes it was started with"):
        two.load_state_dict(one.state_dict())
    two.load_state_dict(two.state_dict())
    written_before_routes = one.state_dict()
    written_before_routes["optimizer"] = written_before_routes.pop("optimizers")[0]
    one.load_state_dict(written_before_routes)


def test_the_worked_example_trains_filters_with_sgd_and_the_rest_with_adam() -> None:
    """conf/optimizer/sgd_adam.yaml, the example of docs/design.md, on the All-CNN-T: its filters in
    the experiment's SGD, its norm layers' parameters in Adam."""
    cfg = without_hydra(compose_config(["experiment=cifar_allcnn", "optimizer=sgd_adam", "model.c1=4",
                                        "model.c2=4"]))
    model = build_model(cfg.model)
    sgd, adam = build_optimizer(cfg.optimizer, model)
    assert (type(sgd), type(adam)) == (torch.optim.SGD, torch.optim.Adam)
    assert [p.ndim for p in sgd.param_groups[0]["params"]] == [4] * 9 and len(sgd.param_groups) == 1
    assert [p.ndim for group in adam.param_groups for p in group["params"]] == [1] * 18
    assert (sgd.param_groups[0]["lr"], sgd.param_groups[0]["momentum"]) == (cfg.optimizer.lr, 0.9)
