"""Nonlinear regression: fit f*(x) = sin(10 pi x^4) from n points and measure where the fit holds.

Recipe: draw n training points on [x_low, x_high], train the MLP with SGD towards interpolation
(until the training MSE reaches ``regression.mse_tolerance`` or the update budget runs out), then
measure the sup-norm error on a dense grid inside the data's support (delta_in) and on the grid
extended to ``regression.extrapolate_to`` (delta_out), and plot the fit.

The loop here is not ``dlfp.engine.loop.fit``: that loop runs a fixed number of updates, with no
stopping rule on the training loss, and checkpoints for resuming, which runs of seconds do not need.
This one syncs with Python only every ``train.log_every`` updates, to log the training MSE (over
all n points) and check the tolerance, and for the MLP under SGD it updates with a hand-written
step (``dlfp.models.mlp_sgd``) that skips autograd's per-operation costs.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn
from tqdm import tqdm

from dlfp.data.regression1d import Regression1D
from dlfp.engine.checkpoint import save_checkpoint
from dlfp.engine.loop import total_steps
from dlfp.engine.optim import build_optimizer, lr_factor
from dlfp.errors import DlfpError
from dlfp.models.mlp_sgd import MLPSGDStep
from dlfp.run import Run
from dlfp.viz.curves import plot_curves
from dlfp.viz.regression import plot_fit

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run: Run) -> dict[str, float]:
    if cfg.resume:
        raise DlfpError("the regression task does not resume (its runs take seconds); "
                        "run it again without resume=true")
    _check_config(cfg)
    data: Regression1D = instantiate(cfg.dataset).to(run.hw.device)
    model: nn.Module = instantiate(cfg.model, **_input_standardization(cfg, data)).to(run.hw.device)
    optimizer = build_optimizer(cfg.optimizer, model)
    batches = Minibatches(data, None if cfg.regression.full_batch else cfg.train.batch_size, cfg.seed)
    steps = total_steps(cfg.train, len(batches))
    set_lr = lr_setter(optimizer, lr_factor(cfg.schedule, steps))
    grid = Grid(data.x_low, data.x_high, cfg.regression.extrapolate_to, cfg.regression.grid_points,
                run.hw.device)

    began, began_cpu = time.perf_counter(), time.process_time()
    done = train_to_tolerance(
        model, data, batches, make_update(model, optimizer, cfg.regression.fast_mlp_step),
        optimizer, set_lr, grid, run=run, steps=steps,
        tolerance=cfg.regression.mse_tolerance, log_every=cfg.train.log_every,
        eval_every=cfg.train.eval_every,
    )
    run.timings["train_seconds"] = round(time.perf_counter() - began, 3)
    run.timings["train_cpu_seconds"] = round(time.process_time() - began_cpu, 3)  # this process only

    errors = grid.errors(model, data.target)
    metrics = {"train_mse": train_mse(model, data), "delta_in": errors.delta_in,
               "delta_out": errors.delta_out, "steps": float(done)}
    save_checkpoint(run.checkpoint_dir / "last.pt", {"step": done, "model": model.state_dict()})
    with torch.no_grad():
        fit = model(grid.x.float()).double().squeeze(1)
    plot_fit(run.plots_dir / "fit.png", grid.x.squeeze(1).cpu(), data.target(grid.x).squeeze(1).cpu(),
             fit.cpu(), data.x.squeeze(1).cpu(), data.y.squeeze(1).cpu(), support=(data.x_low, data.x_high),
             title=f"n={data.n}, seed {cfg.seed}: delta_in {errors.delta_in:.3g}, "
                   f"delta_out {errors.delta_out:.3g}")
    plot_curves({"train": run.metrics.records("train")}, "loss", run.plots_dir / "loss.png",
                title=f"training MSE (n={data.n})", ylabel="MSE", logy=True)
    return metrics


def _input_standardization(cfg: DictConfig, data: Regression1D) -> dict[str, float]:
    """The MLP's input map: x -> (x - mean) / std with the moments of the input distribution.

    The known distribution, not the sample, so every n and seed gets the same map (a sample of
    ten points would give a noisy one). Without it, x in [0, 1] meets PyTorch's default
    initialisation and the network fits the fast oscillation near x = 1 many times slower.
    """
    if not cfg.regression.standardize_inputs:
        return {}
    mean, std = data.input_moments
    return {"input_mean": mean, "input_std": std}


def _check_config(cfg: DictConfig) -> None:
    reg = cfg.regression
    if reg.extrapolate_to < cfg.dataset.x_high:
        raise DlfpError(f"regression.extrapolate_to={reg.extrapolate_to} must be at least "
                        f"dataset.x_high={cfg.dataset.x_high} (delta_out's grid extends delta_in's)")
    if reg.grid_points < 2:
        raise DlfpError(f"regression.grid_points={reg.grid_points} must be at least 2")
    if not reg.full_batch and cfg.train.batch_size < 1:
        raise DlfpError(f"train.batch_size={cfg.train.batch_size} must be positive "
                        "(or set regression.full_batch=true)")
    for key in ("log_every", "eval_every"):
        if cfg.train[key] < 1:
            raise DlfpError(f"train.{key}={cfg.train[key]} must be positive")
    if cfg.model.get("depth", 1) < 1 or cfg.model.get("width", 1) < 1:
        raise DlfpError(f"model.depth={cfg.model.depth} and model.width={cfg.model.width} "
                        "must be positive")


class Minibatches:
    """Shuffled minibatches of the training set, or the whole set each update (``size=None``).

    The shuffling has its own generator seeded by ``seed``, so it does not depend on how many
    random numbers the model's initialisation drew.
    """

    def __init__(self, data: Regression1D, size: int | None, seed: int) -> None:
        self.data, self.seed = data, seed
        self.size = data.n if size is None else min(int(size), data.n)

    def __len__(self) -> int:
        return math.ceil(self.data.n / self.size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = self.data.x, self.data.y
        if self.size == self.data.n:
            while True:
                yield x, y
        gen = torch.Generator().manual_seed(self.seed)
        while True:
            for idx in torch.randperm(self.data.n, generator=gen).to(x.device).split(self.size):
                yield x[idx], y[idx]


@dataclass(frozen=True)
class GridErrors:
    delta_in: float  # max |f - f*| on the grid over [x_low, x_high]
    delta_out: float  # the same on the grid continued to extrapolate_to


class Grid:
    """Evenly spaced points: ``points`` of them span [low, high]; the same spacing continues to
    ``out_high``, so the delta_out grid contains the delta_in grid and delta_out >= delta_in."""

    def __init__(self, low: float, high: float, out_high: float, points: int,
                 device: torch.device) -> None:
        step = (high - low) / (points - 1)
        total = points + math.floor((out_high - high) / step + 1e-9)
        self.points = points
        # rounded to float32, the network's precision, so f* is evaluated at the inputs it sees
        x = (low + step * torch.arange(total, dtype=torch.float64)).float().double()
        self.x = x.unsqueeze(1).to(device)

    @torch.no_grad()
    def errors(self, model: nn.Module, target) -> GridErrors:
        was_training = model.training
        model.eval()
        error = (model(self.x.float()).double() - target(self.x)).abs().squeeze(1)
        model.train(was_training)
        return GridErrors(delta_in=float(error[: self.points].max()), delta_out=float(error.max()))


def lr_setter(optimizer: torch.optim.Optimizer,
              factor: Callable[[int], float]) -> Callable[[int], None]:
    """``set_lr(step)``: each group's lr = its configured lr x the schedule's factor at ``step``
    (what LambdaLR does, without its check that ``optimizer.step`` ran, which the hand-written
    update does not call)."""
    peaks = [group["lr"] for group in optimizer.param_groups]

    def set_lr(step: int) -> None:
        for group, peak in zip(optimizer.param_groups, peaks):
            group["lr"] = peak * factor(step)

    return set_lr


def make_update(model: nn.Module, optimizer: torch.optim.Optimizer,
                fast_mlp_step: bool) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """One optimiser update on the MSE of a batch: the hand-written MLP + SGD step where it
    applies (same arithmetic, fewer per-operation costs), autograd and ``optimizer.step`` otherwise."""
    if fast_mlp_step and MLPSGDStep.supports(model, optimizer):
        return MLPSGDStep(model, optimizer).step

    def autograd_update(x: torch.Tensor, y: torch.Tensor) -> None:
        loss = ((model(x) - y) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return autograd_update


@torch.no_grad()
def train_mse(model: nn.Module, data: Regression1D) -> float:
    return float(((model(data.x) - data.y) ** 2).mean())


def train_to_tolerance(
    model: nn.Module,
    data: Regression1D,
    batches: Minibatches,
    update: Callable[[torch.Tensor, torch.Tensor], None],
    optimizer: torch.optim.Optimizer,
    set_lr: Callable[[int], None],
    grid: Grid,
    *,
    run: Run,
    steps: int,
    tolerance: float,
    log_every: int,
    eval_every: int,
) -> int:
    """MSE updates until the training MSE is <= ``tolerance`` (checked every ``log_every``
    updates) or ``steps`` updates are done; returns the number of updates run."""
    per_epoch = len(batches)

    def check(step: int) -> float:
        mse = train_mse(model, data)
        if not math.isfinite(mse):
            raise DlfpError(f"the training MSE became NaN or infinite by update {step}; lower "
                            "optimizer.lr or check dataset.noise_std")
        run.metrics.log(step, "train", epoch=round(step / per_epoch, 4), loss=mse,
                        lr=optimizer.param_groups[0]["lr"])
        return mse

    def evaluate(step: int) -> None:
        errors = grid.errors(model, data.target)
        run.metrics.log(step, "grid", epoch=round(step / per_epoch, 4),
                        delta_in=errors.delta_in, delta_out=errors.delta_out)

    model.train()
    mse = check(0)
    evaluate(0)
    bar = tqdm(total=steps, disable=not sys.stderr.isatty(), unit="step", dynamic_ncols=True)
    step, next_eval, batch_iter = 0, eval_every, iter(batches)
    while step < steps and mse > tolerance:
        for _ in range(min(log_every - step % log_every, steps - step)):
            set_lr(step)
            update(*next(batch_iter))
            step += 1
        mse = check(step)
        bar.update(step - bar.n)
        bar.set_postfix(mse=f"{mse:.3g}")
        if step >= next_eval or step == steps or mse <= tolerance:
            evaluate(step)
            next_eval = (step // eval_every + 1) * eval_every
    bar.close()
    if mse <= tolerance:
        log.info("training MSE %.3g <= %.3g after %d updates", mse, tolerance, step)
    else:
        log.info("update budget of %d spent; training MSE %.3g > tolerance %.3g", steps, mse, tolerance)
    return step
