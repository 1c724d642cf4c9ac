"""Nonlinear regression: fit f*(x) = sin(10 pi x^4) from n points and measure where the fit holds.

Recipe: draw n training points on [x_low, x_high], train the MLP with SGD towards interpolation
through the engine's driver (until the training MSE over all n points, measured every
``train.log_every`` updates, reaches ``train.stop_loss`` or the update budget runs out), then
measure the sup-norm error on a dense grid inside the data's support (delta_in) and on the grid
extended to ``regression.extrapolate_to`` (delta_out), and plot the fit. For the MLP under SGD
each update is a hand-written step (``dlfp.models.mlp_sgd``) that skips autograd's per-operation
costs.
"""

from __future__ import annotations

import logging
import time

import torch
from omegaconf import DictConfig
from torch import nn

from dlfp.data import Split, load_dataset
from dlfp.data.loader import Loader
from dlfp.data.regression1d import Regression1D
from dlfp.engine.driver import fit
from dlfp.engine.optim import build_optimizer
from dlfp.engine.run import Run
from dlfp.engine.updates import TorchUpdate
from dlfp.errors import DlfpError
from dlfp.eval.grid_errors import Grid
from dlfp.models import build_model
from dlfp.models.mlp_sgd import manual_step
from dlfp.viz.curves import plot_curves
from dlfp.viz.regression import plot_fit

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run: Run) -> dict[str, float]:
    _check_config(cfg)
    data: Regression1D = load_dataset(cfg.dataset).to(run.hw.device)
    model = build_model(cfg.model, **_input_standardization(cfg, data)).to(run.hw.device)
    optimizer = build_optimizer(cfg.optimizer, model)
    fast = manual_step(model, optimizer) if cfg.regression.fast_mlp_step else None
    update = TorchUpdate(model, optimizer, run.hw, cfg.train, manual_step=fast)  # on model.loss: MSE
    size = data.n if cfg.regression.full_batch else min(cfg.train.batch_size, data.n)
    batches = Loader(Split(x=data.x, y=data.y), size, shuffle=True, seed=cfg.seed, drop_last=False)
    grid = Grid(data.x_low, data.x_high, cfg.regression.extrapolate_to, cfg.regression.grid_points,
                run.hw.device)

    began_cpu = time.process_time()
    result = fit(update, batches, lambda net: {"grid": grid.errors(net, data.target).as_dict()},
                 run=run, train_cfg=cfg.train, schedule=cfg.schedule, resume=cfg.resume,
                 measure_train=lambda: {"loss": train_mse(model, data)})
    run.timings["train_cpu_seconds"] = round(time.process_time() - began_cpu, 3)  # this process only
    mse = train_mse(model, data)
    log.info("training MSE %.3g after %d updates (train.stop_loss %s)", mse, result.steps,
             cfg.train.stop_loss)

    errors = grid.errors(model, data.target)
    with torch.no_grad():
        fit_values = model(grid.x.float()).double().squeeze(1)
    plot_fit(run.plots_dir / "fit.png", grid.x.squeeze(1).cpu(), data.target(grid.x).squeeze(1).cpu(),
             fit_values.cpu(), data.x.squeeze(1).cpu(), data.y.squeeze(1).cpu(),
             support=(data.x_low, data.x_high),
             title=f"n={data.n}, seed {cfg.seed}: delta_in {errors.delta_in:.3g}, "
                   f"delta_out {errors.delta_out:.3g}")
    plot_curves({"train": run.metrics.records("train")}, "loss", run.plots_dir / "loss.png",
                title=f"training MSE (n={data.n})", ylabel="MSE", logy=True)
    return {"train_mse": mse, "delta_in": errors.delta_in,
            "delta_out": errors.delta_out, "steps": float(result.steps)}


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


@torch.no_grad()
def train_mse(model: nn.Module, data: Regression1D) -> float:
    return float(((model(data.x) - data.y) ** 2).mean())
