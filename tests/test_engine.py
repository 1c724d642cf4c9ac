"""Engine parts: checkpoints in both formats, RNG state, weight-decay groups (the driver itself is
tested in test_driver.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from dlfp.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from dlfp.engine.optim import param_groups
from dlfp.models.patch_mlp import PatchMLP


def test_checkpoint_round_trip_with_weights_only(tmp_path: Path) -> None:
    model = PatchMLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 1, 28, 28)).sum().backward()
    opt.step()
    state = {"step": 7, "model": model.state_dict(), "optimizer": opt.state_dict(), "rng": rng_state()}
    save_checkpoint(tmp_path / "last.pt", state)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left
    loaded = load_checkpoint(tmp_path / "last.pt")  # weights_only=True inside
    twin = PatchMLP()
    twin.load_state_dict(loaded["model"])
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)
    opt2 = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(loaded["optimizer"])
    assert torch.equal(opt2.state[next(iter(twin.parameters()))]["momentum_buffer"],
                       opt.state[next(iter(model.parameters()))]["momentum_buffer"])
    assert loaded["step"] == 7


def test_rng_states_restore_every_generator() -> None:
    import random

    state = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_weight_decay_goes_to_weights_only() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 3))
    decay, no_decay = param_groups(model, 5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert {p.ndim for p in decay["params"]} == {2, 4}
    assert len(no_decay["params"]) == 4  # conv bias, BN weight and bias, linear bias


def test_norm_parameters_get_their_own_lr_and_weight_decay() -> None:
    from omegaconf import OmegaConf

    from dlfp.engine.optim import build_optimizer

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 3))
    cfg = OmegaConf.create({"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.5, "momentum": 0.9,
                            "weight_decay": 1e-3, "norm_lr_scale": 64.0, "norm_weight_decay": 2e-5})
    weights, biases, norms = build_optimizer(cfg, model).param_groups
    assert [len(g["params"]) for g in (weights, biases, norms)] == [2, 2, 2]
    assert (weights["lr"], weights["weight_decay"]) == (0.5, 1e-3)
    assert (biases["lr"], biases["weight_decay"]) == (0.5, 0.0)
    assert (norms["lr"], norms["weight_decay"]) == (32.0, 2e-5) and "lr_scale" not in norms
    assert {id(p) for p in norms["params"]} == {id(model[1].weight), id(model[1].bias)}


def test_npz_checkpoint_round_trips_nested_state_without_pickle(tmp_path: Path) -> None:
    import random

    state = {"step": 12, "stopped": False, "config": '{"a": 1}',
             "update": {"params": {"fc.weight": np.arange(6.0).reshape(2, 3)}, "momentum": {}},
             "window": {"names": ["loss"], "sums": torch.tensor([1.5], dtype=torch.float64), "count": 3},
             "rng": rng_state()}
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    save_checkpoint(tmp_path / "last.npz", state)
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]
    loaded = load_checkpoint(tmp_path / "last.npz")
    assert (loaded["step"], loaded["stopped"], loaded["config"]) == (12, False, '{"a": 1}')
    assert np.array_equal(loaded["update"]["params"]["fc.weight"], np.arange(6.0).reshape(2, 3))
    assert list(loaded["window"]["names"]) == ["loss"] and loaded["window"]["count"] == 3
    set_rng_state(loaded["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
