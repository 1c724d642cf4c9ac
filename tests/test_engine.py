"""The shared training loop: checkpoints, the NaN guard, weight-decay groups, schedules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from dlfp.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from dlfp.engine.hardware import setup_hardware
from dlfp.engine.loop import fit
from dlfp.engine.metrics import MetricLog
from dlfp.engine.optim import build_schedule, param_groups
from dlfp.errors import DlfpError
from dlfp.models.patch_mlp import PatchMLP
from dlfp.run import Run


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

    import numpy as np

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


def test_cosine_schedule_warms_up_then_decays() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    cfg = OmegaConf.create({"kind": "cosine", "warmup_steps": 10, "final_lr_fraction": 0.1})
    sched = build_schedule(cfg, opt, total_steps=110)
    lrs = []
    for _ in range(110):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.1 + 0.9 * 0.5, rel=1e-2)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


class _Batches:
    def __len__(self) -> int:
        return 4

    def epoch(self, epoch: int, start: int = 0):
        for i in range(start, 4):
            yield torch.full((2, 3), float(epoch * 4 + i))


def _tiny_run(tmp_path: Path) -> Run:
    cfg = OmegaConf.create({"device": "cpu", "amp_dtype": None, "compile": False,
                            "channels_last": False, "threads": None, "deterministic": True})
    return Run(cfg=OmegaConf.create({}), dir=tmp_path, hw=setup_hardware(cfg),
               metrics=MetricLog(tmp_path / "metrics.jsonl"))


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_good_checkpoint(tmp_path: Path) -> None:
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    train_cfg = OmegaConf.create({"log_every": 1, "eval_every": 100, "checkpoint_every": 5,
                                  "grad_clip": None})

    def step_loss(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        loss = net(x).pow(2).mean()
        return loss * float("nan") if x[0, 0] >= 7 else loss  # the 8th batch is poisoned

    run = _tiny_run(tmp_path)
    with pytest.raises(DlfpError, match="NaN or infinite by update 8") as info:
        fit(model, _Batches(), step_loss, lambda net: {}, run=run, optimizer=opt, scheduler=sched,
            steps=20, train_cfg=train_cfg)
    assert "last good checkpoint" in str(info.value)
    kept = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert kept["step"] == 5
    assert all(torch.isfinite(t).all() for t in kept["model"].values())
    assert max(r["step"] for r in run.metrics.records("train")) == 7  # nothing logged past the guard
