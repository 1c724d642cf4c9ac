"""The one training driver (dlfp/engine/driver.py): kill-and-resume for the tasks that gained it,
EMA, lr schedules, cadence in epochs, gradient accumulation, hooks, stop_loss, the NaN guard, and
checkpoints that rebuild their model."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_MNIST, Crash, crash_and_resume, read_summary, run_inprocess
from omegaconf import DictConfig, OmegaConf
from torch import nn

from dlfp.config.train import TrainLoopConfig
from dlfp.engine.checkpoint import load_checkpoint
from dlfp.engine.driver import fit
from dlfp.engine.hardware import setup_hardware
from dlfp.engine.metrics import MetricLog
from dlfp.engine.optim import build_optimizer
from dlfp.engine.run import Run
from dlfp.engine.schedules import lr_factor
from dlfp.engine.updates import TorchUpdate
from dlfp.errors import DlfpError
from dlfp.models import rebuild_model

CPU = OmegaConf.create({"device": "cpu", "amp_dtype": None, "compile": False, "channels_last": False,
                        "threads": None, "deterministic": True})


def _run(tmp_path: Path, **settings) -> Run:
    return Run(cfg=OmegaConf.create({"task": "toy", **settings}), dir=tmp_path, hw=setup_hardware(CPU),
               metrics=MetricLog(tmp_path / "metrics.jsonl"))


def _train_cfg(**values) -> DictConfig:
    return OmegaConf.merge(OmegaConf.structured(TrainLoopConfig), values)


class _Batches:
    """Four float64 batches of 4 points of a linear target per epoch, different in every epoch."""

    def __len__(self) -> int:
        return 4

    def epoch(self, epoch: int, start: int = 0):
        for i in range(start, 4):
            gen = torch.Generator().manual_seed(epoch * 4 + i)
            x = torch.randn(4, 3, generator=gen, dtype=torch.float64)
            yield {"x": x, "y": x.sum(1, keepdim=True)}


def _mse(net: nn.Module, batch: dict) -> torch.Tensor:
    return (net(batch["x"]) - batch["y"]).pow(2).mean()


class _Linear(nn.Linear):
    """A linear model that owns its training loss (the MSE), as every trained model does."""

    def loss(self, batch: dict) -> torch.Tensor:
        return _mse(self, batch)


def _linear_update(train_cfg: DictConfig, lr: float = 0.1, seed: int = 0) -> TorchUpdate:
    torch.manual_seed(seed)
    model = _Linear(3, 1).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    return TorchUpdate(model, optimizer, setup_hardware(CPU), train_cfg)


def _use_loss(update: TorchUpdate, loss) -> None:
    """Replace the model's training loss by ``loss(net, batch)`` (to record or poison it)."""
    update.model.loss = lambda batch: loss(update.model, batch)


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


# ---- crashed and resumed, for the tasks with state of their own (the MNIST network's run is
# killed with SIGKILL and resumed through the CLI in test_train_e2e) ----


def test_crashed_regression_run_resumes_to_identical_metrics(tmp_path: Path) -> None:
    overrides = ["experiment=regression", "dataset.n=100", "train.steps=1500", "train.log_every=50",
                 "train.eval_every=250", "train.checkpoint_every=250", "train.stop_loss=null"]
    resumed, straight = crash_and_resume(overrides, tmp_path, crash_after=830)
    assert read_summary(resumed)["metrics"] == read_summary(straight)["metrics"]
    assert (resumed / "metrics.jsonl").read_text() == (straight / "metrics.jsonl").read_text()


def test_crashed_numpy_network_run_resumes_to_identical_metrics(tmp_path: Path) -> None:
    overrides = ["experiment=mnist_nn_numpy", "train.steps=800", "train.log_every=100",
                 "train.eval_every=200", "train.checkpoint_every=200", "train.eval_batch_size=500"]
    resumed, straight = crash_and_resume(overrides, tmp_path, crash_after=530)
    assert read_summary(resumed)["metrics"] == read_summary(straight)["metrics"]
    assert (resumed / "metrics.jsonl").read_text() == (straight / "metrics.jsonl").read_text()


# ---- checkpoints rebuild their model from the file alone ----


def test_checkpoint_holds_the_config_and_rebuilds_the_model(tmp_path: Path) -> None:
    run_inprocess(["experiment=regression", "dataset.n=20", "train.steps=200", "train.log_every=50",
                   "train.eval_every=100"], tmp_path / "run")
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    config = json.loads(ckpt["config"])
    assert config["task"] == "regression" and config["dataset"]["n"] == 20
    model = rebuild_model(ckpt)
    assert float(model.input_mean) == 0.5  # the task's extra constructor argument came along
    x = torch.linspace(0, 1.5, 7).unsqueeze(1)
    reference = rebuild_model(ckpt)
    assert torch.equal(model(x), reference(x))
    with pytest.raises(DlfpError, match="does not say how to build its model"):
        rebuild_model({"update": ckpt["update"]})


# ---- EMA ----


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_of_the_weights_matches_a_hand_computation(tmp_path: Path, warmup: bool) -> None:
    decay = 0.8
    update = _linear_update(_train_cfg())
    seen = []  # the weights before each update, then the final ones

    def recording(net: nn.Module, batch: dict) -> torch.Tensor:
        seen.append(_params(update.model))
        return _mse(net, batch)

    _use_loss(update, recording)
    run = _run(tmp_path)
    fit(update, _Batches(), lambda net: {"val": {"w0": float(net.weight[0, 0])}}, run=run,
        train_cfg=_train_cfg(steps=6, ema_decay=decay, ema_warmup=warmup, eval_every=3, log_every=1,
                             checkpoint_every=6))
    seen.append(_params(update.model))
    ema = seen[0]
    for n, weights in enumerate(seen[1:], 1):
        d = min(decay, n / (9 + n)) if warmup else decay  # after update n: (1 + m) / (10 + m), m = n - 1
        ema = [d * e + (1 - d) * w for e, w in zip(ema, weights)]
    saved = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["task"]["ema"]
    assert saved["updates"] == 6
    saved = saved["model"]
    assert torch.allclose(saved["weight"], ema[0], rtol=1e-14, atol=0)
    assert torch.allclose(saved["bias"], ema[1], rtol=1e-14, atol=0)
    assert not torch.allclose(saved["weight"], seen[-1][0])  # the raw weights moved on
    at_end = [r for r in run.metrics.records("val_ema") if r["step"] == 6]
    assert at_end[0]["w0"] == pytest.approx(float(ema[0][0, 0]), rel=1e-14)
    assert [r["step"] for r in run.metrics.records("val_ema")] == [0, 3, 6]


def test_ema_resumes_exactly(tmp_path: Path) -> None:
    cfg = dict(ema_decay=0.9, eval_every=4, log_every=2, checkpoint_every=4)
    straight = _linear_update(_train_cfg())
    fit(straight, _Batches(), None, run=_run(tmp_path / "a"), train_cfg=_train_cfg(steps=12, **cfg))
    part = _linear_update(_train_cfg())
    fit(part, _Batches(), None, run=_run(tmp_path / "b"), train_cfg=_train_cfg(steps=8, **cfg))
    rest = _linear_update(_train_cfg(), seed=5)  # other initial weights: all state must come from the file
    fit(rest, _Batches(), None, run=_run(tmp_path / "b"), train_cfg=_train_cfg(steps=12, **cfg), resume=True)
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    for key in ("weight", "bias"):
        assert torch.equal(a["task"]["ema"]["model"][key], b["task"]["ema"]["model"][key])
        assert torch.equal(a["update"]["model"][key], b["update"]["model"][key])


SECOND_OPTIMIZER = {  # a route to a second optimizer: Adam for the bias, or Muon for the weight matrix
    "adam": {"params": {"name": "bias"}, "optimizer": {"name": "adam", "lr": 0.05}},
    "muon": {"params": {"shape": ["matrix"]}, "optimizer": {"name": "muon", "lr": 0.05, "momentum": 0.9}},
}


def _two_optimizer_update(seed: int, second: str = "adam") -> TorchUpdate:
    """SGD with momentum for what the route to the ``second`` optimizer does not take."""
    torch.manual_seed(seed)
    model = _Linear(3, 1).double()
    cfg = OmegaConf.create({"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1, "momentum": 0.9,
                            "weight_decay": 1e-2, "routes": [SECOND_OPTIMIZER[second]]})
    return TorchUpdate(model, build_optimizer(cfg, model), setup_hardware(CPU), _train_cfg())


@pytest.mark.parametrize("second", sorted(SECOND_OPTIMIZER))
def test_a_run_with_two_optimizers_resumes_exactly(tmp_path: Path, second: str) -> None:
    """A run on a cosine schedule dies in its 7th of 12 updates and resumes (from update 4) into
    an update with other initial weights: the weights and both optimizers' states end
    bit-identical to a straight run's."""
    cfg = _train_cfg(steps=12, eval_every=4, log_every=2, checkpoint_every=4)
    schedule = OmegaConf.create({"kind": "cosine", "warmup_steps": 2, "final_lr_fraction": 0.1})
    fit(_two_optimizer_update(0, second), _Batches(), None, run=_run(tmp_path / "a"), schedule=schedule,
        train_cfg=cfg)
    crashing, calls = _two_optimizer_update(0, second), iter(range(1, 13))

    def crash_in_update_7(net: nn.Module, batch: dict) -> torch.Tensor:
        if next(calls) == 7:
            raise Crash("crashed in update 7")
        return _mse(net, batch)

    _use_loss(crashing, crash_in_update_7)
    with pytest.raises(Crash):
        fit(crashing, _Batches(), None, run=_run(tmp_path / "b"), schedule=schedule, train_cfg=cfg)
    fit(_two_optimizer_update(5, second), _Batches(), None, run=_run(tmp_path / "b"), schedule=schedule,
        train_cfg=cfg, resume=True)
    a, b = (load_checkpoint(tmp_path / run / "checkpoints" / "last.pt")["update"] for run in "ab")
    for key in ("weight", "bias"):
        assert torch.equal(a["model"][key], b["model"][key])
    for straight, resumed in zip(a["optimizers"], b["optimizers"], strict=True):
        [state] = straight["state"].values()  # each optimizer holds one parameter's state
        assert state and state.keys() == resumed["state"][0].keys()
        assert all(torch.equal(v, resumed["state"][0][k]) for k, v in state.items())


# ---- lookahead, evaluation at step 0, what a resumed run reports ----


def test_a_lookahead_longer_than_the_run_keeps_the_trained_weights(tmp_path: Path) -> None:
    """train.lookahead_every past the budget: the last update's pull starts the average, so the
    model ends where training took it (it used to end on its initial weights)."""
    cfg = dict(steps=6, log_every=1, eval_every=6, checkpoint_every=6)
    plain, averaged = _linear_update(_train_cfg()), _linear_update(_train_cfg())
    fit(plain, _Batches(), None, run=_run(tmp_path / "plain"), train_cfg=_train_cfg(**cfg))
    fit(averaged, _Batches(), None, run=_run(tmp_path / "lookahead"),
        train_cfg=_train_cfg(lookahead_decay=0.9, lookahead_every=100, **cfg))
    for a, b in zip(_params(plain.model), _params(averaged.model)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("at_start", [True, False])
def test_the_evaluation_at_step_0_is_an_option(tmp_path: Path, at_start: bool) -> None:
    run = _run(tmp_path)
    fit(_linear_update(_train_cfg()), _Batches(), lambda net: {"val": {"one": 1.0}}, run=run,
        train_cfg=_train_cfg(steps=8, eval_every=4, log_every=4, checkpoint_every=8, eval_at_start=at_start))
    assert [r["step"] for r in run.metrics.records("val")] == ([0] if at_start else []) + [4, 8]


def test_a_resumed_run_reports_the_whole_runs_training_seconds(tmp_path: Path) -> None:
    """The seconds are checkpointed: a run resumed for its last 4 fast updates reports the 8 slow
    ones before them too (it used to report its own part only, a throughput far too high)."""
    def slow(net: nn.Module, batch: dict) -> torch.Tensor:
        time.sleep(0.05)
        return _mse(net, batch)

    cfg = dict(log_every=4, eval_every=4, checkpoint_every=4)
    first = _linear_update(_train_cfg())
    _use_loss(first, slow)
    fit(first, _Batches(), None, run=_run(tmp_path), train_cfg=_train_cfg(steps=8, **cfg))
    run = _run(tmp_path)
    rest = fit(_linear_update(_train_cfg()), _Batches(), None, run=run, train_cfg=_train_cfg(steps=12, **cfg),
               resume=True)
    assert rest.train_seconds >= 0.4 and run.timings["train_seconds"] >= 0.4


def test_resume_itself_is_not_a_changed_setting(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def run(steps: int, resume: bool) -> None:  # the run's config holds resume, as a real one does
        settings = _run(tmp_path, resume=resume, train={"steps": steps})
        fit(_linear_update(_train_cfg()), _Batches(), None, run=settings,
            train_cfg=_train_cfg(steps=steps, log_every=2, eval_every=4, checkpoint_every=4), resume=resume)

    run(4, resume=False)
    with caplog.at_level(logging.WARNING, logger="dlfp.engine.driver"):
        run(4, resume=True)
        assert "changed settings" not in caplog.text
        run(6, resume=True)
    assert caplog.text.count("changed settings: train.steps: 4 -> 6\n") == 1


def test_the_classifiers_final_scores_reuse_the_last_evaluation(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The weights after the last evaluation are the final ones: the validation split is scored at
    updates 20, 40 and 60 and not again for the summary (it used to be, a fourth time)."""
    from dlfp.tasks import classify

    calls = []
    evaluate = classify.evaluate
    monkeypatch.setattr(classify, "evaluate", lambda *args: calls.append(1) or evaluate(*args))
    summary = run_inprocess([*TINY_MNIST, "train.eval_at_start=false"], tmp_path / "run")
    assert len(calls) == 3
    last = MetricLog(tmp_path / "run" / "metrics.jsonl").records("val")[-1]
    assert last["step"] == 60 and summary["metrics"]["val/accuracy"] == last["accuracy"]


# ---- lr schedules ----


def test_multistep_in_epochs_matches_torch_multisteplr() -> None:
    cfg = OmegaConf.create({"kind": "multistep", "warmup_steps": 0, "milestones": [2, 4],
                            "unit": "epochs", "gamma": 0.1})
    factor = lr_factor(cfg, total_steps=18, steps_per_epoch=3)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4], gamma=0.1)
    for epoch in range(6):
        for i in range(3):
            assert factor(epoch * 3 + i) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        sched.step()
    in_updates = lr_factor(OmegaConf.merge(cfg, {"unit": "updates", "milestones": [5]}), 18, 3)
    assert [in_updates(k) for k in (4, 5, 17)] == [1.0, pytest.approx(0.1), pytest.approx(0.1)]


@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_onecycle_matches_torch_onecyclelr(anneal: str) -> None:
    cfg = OmegaConf.create({"kind": "onecycle", "pct_start": 0.3, "div_factor": 25.0,
                            "final_div_factor": 1e4, "anneal": anneal})
    factor = lr_factor(cfg, total_steps=50, steps_per_epoch=10)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2.0, total_steps=50, cycle_momentum=False,
                                                anneal_strategy=anneal)
    for step in range(50):
        assert 2.0 * factor(step) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
        opt.step()
        sched.step()


def test_cosine_schedule_warms_up_then_decays() -> None:
    cfg = OmegaConf.create({"kind": "cosine", "warmup_steps": 10, "final_lr_fraction": 0.1})
    factor = lr_factor(cfg, total_steps=110, steps_per_epoch=10)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.1 + 0.9 * 0.5, rel=1e-2)
    assert factor(110) == pytest.approx(0.1)


def test_unknown_schedule_lists_the_kinds() -> None:
    with pytest.raises(DlfpError, match="schedule.kind='step' is unknown; known kinds: constant"):
        lr_factor(OmegaConf.create({"kind": "step"}), 10, 2)


def test_driver_applies_the_schedule_and_logs_the_lr_of_the_next_update(tmp_path: Path) -> None:
    run = _run(tmp_path)
    schedule = OmegaConf.create({"kind": "multistep", "warmup_steps": 0, "milestones": [1],
                                 "unit": "epochs", "gamma": 0.5})
    fit(_linear_update(_train_cfg()), _Batches(), None, run=run, schedule=schedule,
        train_cfg=_train_cfg(epochs=2, log_every=1, eval_every=8, checkpoint_every=8))
    lrs = {r["step"]: r["lr"] for r in run.metrics.records("train")}
    assert [lrs[s] for s in (1, 3, 4, 8)] == [0.1, 0.1, 0.05, 0.05]


# ---- budget and cadence in epochs, hooks, accumulation, stop_loss ----


def test_cadence_in_epochs_and_the_epoch_start_hook(tmp_path: Path) -> None:
    run = _run(tmp_path)
    starts = []
    result = fit(_linear_update(_train_cfg()), _Batches(), lambda net: {"val": {"one": 1.0}}, run=run,
                 train_cfg=_train_cfg(epochs=3, cadence="epochs", eval_every=1, log_every=2,
                                      checkpoint_every=2),
                 on_epoch_start=starts.append)
    assert result.steps == 12 and starts == [0, 1, 2]
    assert [r["step"] for r in run.metrics.records("val")] == [0, 4, 8, 12]
    assert [r["step"] for r in run.metrics.records("train")] == [8, 12]
    assert [r["epoch"] for r in run.metrics.records("train")] == [2.0, 3.0]


def test_accumulated_micro_batches_give_the_same_update(tmp_path: Path) -> None:
    results = {}
    for k in (1, 2, 4):
        cfg = _train_cfg(steps=8, accumulate=k, log_every=1, eval_every=8, checkpoint_every=8)
        update = _linear_update(cfg)
        run = _run(tmp_path / str(k))
        fit(update, _Batches(), None, run=run, train_cfg=cfg)
        results[k] = (_params(update.model), [r["loss"] for r in run.metrics.records("train")])
    for k in (2, 4):
        for a, b in zip(results[1][0], results[k][0]):
            assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
        assert results[k][1] == pytest.approx(results[1][1], rel=1e-12)
    with pytest.raises(DlfpError, match="train.accumulate=3 must divide the batch of 4"):
        cfg = _train_cfg(steps=1, accumulate=3)
        fit(_linear_update(cfg), _Batches(), None, run=_run(tmp_path / "3"), train_cfg=cfg)


def test_stop_loss_ends_training_and_a_resumed_stopped_run_stays_stopped(tmp_path: Path) -> None:
    count = {"updates": 0}
    measure = lambda: {"loss": 1.0 / (1 + count["updates"])}  # noqa: E731

    def counted(net: nn.Module, batch: dict) -> torch.Tensor:
        count["updates"] += 1
        return _mse(net, batch)

    cfg = _train_cfg(steps=100, stop_loss=0.2, log_every=2, eval_every=50, checkpoint_every=50)
    run = _run(tmp_path)
    update = _linear_update(cfg)
    _use_loss(update, counted)
    result = fit(update, _Batches(), lambda net: {"val": {"one": 1.0}}, run=run,
                 train_cfg=cfg, measure_train=measure)
    assert result.steps == 4
    assert [(r["step"], r["loss"]) for r in run.metrics.records("train")] == [(0, 1.0), (2, 1 / 3), (4, 0.2)]
    assert [r["step"] for r in run.metrics.records("val")] == [0, 4]
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert ckpt["step"] == 4 and ckpt["stopped"]
    again = fit(_linear_update(cfg), _Batches(), lambda net: {"val": {"one": 1.0}}, run=run,
                train_cfg=cfg, measure_train=measure, resume=True)
    assert again.steps == 4


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_good_checkpoint(tmp_path: Path) -> None:
    def poisoned(net: nn.Module, batch: dict) -> torch.Tensor:
        loss = _mse(net, batch)
        return loss * float("nan") if poisoned.calls >= 8 else loss

    def counting(net: nn.Module, batch: dict) -> torch.Tensor:
        poisoned.calls += 1
        return poisoned(net, batch)

    poisoned.calls = 0
    cfg = _train_cfg(steps=20, log_every=1, eval_every=100, checkpoint_every=5)
    update = _linear_update(cfg)
    _use_loss(update, counting)  # the 8th update's loss is NaN
    run = _run(tmp_path)
    with pytest.raises(DlfpError, match="NaN or infinite by update 8") as info:
        fit(update, _Batches(), None, run=run, train_cfg=cfg)
    assert "last good checkpoint" in str(info.value)
    kept = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert kept["step"] == 5
    assert all(torch.isfinite(t).all() for t in kept["update"]["model"].values())
    assert max(r["step"] for r in run.metrics.records("train")) == 7  # nothing logged past the guard


def test_ema_is_refused_for_an_update_without_a_torch_model(tmp_path: Path) -> None:
    class NumpyLike:
        checkpoint_suffix, model = ".npz", np.zeros(1)

    with pytest.raises(DlfpError, match="train.ema_decay needs a torch model"):
        fit(NumpyLike(), _Batches(), None, run=_run(tmp_path), train_cfg=_train_cfg(steps=1, ema_decay=0.9))
