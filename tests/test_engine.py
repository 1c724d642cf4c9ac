"""Engine parts: checkpoints in both formats, RNG state (the driver itself is tested in
test_driver.py, the optimizers in test_optim.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dlfp.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from dlfp.models import model_from_schema


def test_checkpoint_round_trip_with_weights_only(tmp_path: Path) -> None:
    model = model_from_schema("patch_mlp")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 1, 28, 28)).sum().backward()
    opt.step()
    state = {"step": 7, "model": model.state_dict(), "optimizer": opt.state_dict(), "rng": rng_state()}
    save_checkpoint(tmp_path / "last.pt", state)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left
    loaded = load_checkpoint(tmp_path / "last.pt")  # weights_only=True inside
    twin = model_from_schema("patch_mlp")
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
