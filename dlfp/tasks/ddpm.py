"""Denoising diffusion (Ho et al. 2020) on MNIST, with its sample quality measured.

Recipe: images to [-1, 1] (``train.transforms: [rescale]``); a time-conditioned UNet learns to
predict the noise of x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps at t uniform on {0..T-1} (MSE),
trained by the shared driver with an EMA of the weights; every evaluation logs the loss in
``ddpm.loss_buckets`` ranges of t on fixed validation images and noise (it differs by orders of
magnitude across t). Then, with the EMA weights: the forward-noising figure, a grid of samples and
the denoising trajectory (DDIM), and, when ``ddpm.quality.classifier`` names a trained
``experiment=mnist_cnn`` run, the quality table (``eval/sample_quality.py``) for ancestral DDPM
with T steps and DDIM with each S, beside sanity rows: real training images, and the VAE's samples
when ``ddpm.quality.vae`` names a VAE run.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from dlfp.data import ImageData, Split
from dlfp.data.loader import Loader, transformed
from dlfp.data.transforms import build_transforms
from dlfp.engine.diffusion import NoiseSchedule, diffusion_loss, noise_schedule, q_sample, sample
from dlfp.engine.driver import fit
from dlfp.engine.optim import build_optimizer
from dlfp.engine.run import Run
from dlfp.engine.updates import TorchUpdate
from dlfp.errors import DlfpError
from dlfp.eval.diffusion_quality import check_quality_inputs, quality_table
from dlfp.models import build_model
from dlfp.models.unet import size_multiple
from dlfp.viz.diffusion import display_images, plot_denoising, plot_loss_per_timestep, plot_noising
from dlfp.viz.mosaic import plot_image_grid

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run: Run) -> dict[str, float]:
    hw, dcfg = run.hw, cfg.ddpm
    check_quality_inputs(cfg)
    data: ImageData = instantiate(cfg.dataset)
    check_model_fits(cfg.model, data)
    transforms = build_transforms(cfg.train.transforms, data)
    loader = Loader(Split(x=data.train.x).to(hw.device), int(cfg.train.batch_size), shuffle=True,
                    seed=cfg.seed, transforms=transforms, rank=hw.ranks.rank,
                    world_size=hw.ranks.world_size)
    reference_split = data.test if data.test is not None else data.val
    held_out = images_in_range(reference_split, transforms, hw.device)
    schedule = noise_schedule(str(getattr(dcfg.noise, "value", dcfg.noise)), int(dcfg.timesteps))
    model = build_model(cfg.model).to(hw.device)
    if hw.channels_last:
        model.to(memory_format=torch.channels_last)
    loss_images = held_out[: int(dcfg.loss_images)]

    def step_loss(net: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return diffusion_loss(net, schedule, batch["x"])[0]

    def evaluate(net: nn.Module) -> dict[str, dict[str, float]]:
        return {"val": loss_by_timestep(net, schedule, loss_images, int(dcfg.loss_buckets),
                                        int(dcfg.sample_seed))}

    model.loss = lambda batch: step_loss(model, batch)  # TRANSITION (issue 23 item 2)
    update = TorchUpdate(model, build_optimizer(cfg.optimizer, model), hw, cfg.train)
    result = fit(update, loader, evaluate, run=run, train_cfg=cfg.train, schedule=cfg.schedule,
                 resume=cfg.resume)
    if not hw.ranks.is_main:  # rank 0 alone scores, samples and writes
        return {}
    sampler_model = (result.ema_model if result.ema_model is not None else model).eval()

    summary: dict[str, float] = {"steps": float(result.steps), "train_images": float(len(data.train))}
    final = result.evaluation.get("val_ema", result.evaluation["val"])  # the weights that sample
    summary.update({f"val/{k}": v for k, v in final.items()})
    figures(run, cfg, schedule, sampler_model, held_out)
    if dcfg.quality.classifier:
        summary.update(quality_table(run, cfg, schedule, sampler_model, data))
    else:
        log.info("no sample quality: set ddpm.quality.classifier to a run of experiment=mnist_cnn")
    return summary


def check_model_fits(model_cfg: DictConfig, data: ImageData) -> None:
    """The UNet's channels and halvings against the data's images, before anything is built."""
    data.check_in_channels(int(model_cfg.in_channels))
    height, width = data.train.x.shape[-2:]
    multiple = size_multiple(model_cfg.widths)
    if height % multiple or width % multiple:
        raise DlfpError(f"model.widths={list(model_cfg.widths)} halves the image {len(model_cfg.widths) - 1} "
                        f"times, but dataset {data.name}'s images are {height}x{width}, not multiples of "
                        f"{multiple}; use fewer widths")


def images_in_range(split: Split, transforms: list, device: torch.device) -> torch.Tensor:
    """A split's images as the model sees them (``train.transforms``: [-1, 1]), on ``device``."""
    return transformed(Split(x=split.x).to(device), transforms)["x"]


@torch.no_grad()
def loss_by_timestep(net: nn.Module, schedule: NoiseSchedule, x0: torch.Tensor, buckets: int,
                     seed: int) -> dict[str, float]:
    """The noise-prediction MSE at the centre of each of ``buckets`` equal ranges of t, on the same
    images and noise every time (comparable across evaluations), and their mean."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    width = schedule.steps / buckets
    losses: dict[str, float] = {}
    for b in range(buckets):
        t_value = int((b + 0.5) * width)
        t = torch.full((len(x0),), t_value, device=x0.device, dtype=torch.long)
        mse, _ = diffusion_loss(net, schedule, x0, t=t, noise=noise)
        losses[f"loss_t{t_value}"] = mse.item()
    losses["loss"] = float(np.mean(list(losses.values())))
    return losses


def figures(run: Run, cfg: DictConfig, schedule: NoiseSchedule, model: nn.Module,
            held_out: torch.Tensor) -> None:
    """plots/noising.png, loss.png, loss_per_timestep.png, samples.png and denoising.png."""
    dcfg = cfg.ddpm
    steps = [0, *(int(f * (schedule.steps - 1)) for f in (0.1, 0.25, 0.5, 0.75, 1.0))]
    noise = torch.randn(held_out[:6].shape, generator=torch.Generator().manual_seed(0)).to(held_out.device)
    noisy = [q_sample(schedule, held_out[:6], t, noise) for t in steps]
    plot_noising(np.stack([display_images(x) for x in noisy], axis=1), steps, run.plots_dir / "noising.png")
    plot_loss_per_timestep(run.metrics.records(), run.plots_dir)
    generator = torch.Generator().manual_seed(int(dcfg.sample_seed))
    shape = (int(dcfg.grid_images), *held_out.shape[1:])
    images, trajectory = sample(model, schedule, shape, sampler="ddim", steps=int(dcfg.grid_sampler_steps),
                                eta=float(dcfg.eta), generator=generator, clip=bool(dcfg.clip), keep=8,
                                device=held_out.device)
    sampler = f"DDIM, {dcfg.grid_sampler_steps} steps, eta {float(dcfg.eta):g}"
    plot_image_grid(display_images(images), run.plots_dir / "samples.png", title=f"{sampler}, EMA weights")
    rows = np.stack([display_images(x[:6]) for _, x in trajectory], axis=1)  # (6, snapshots, H, W)
    plot_denoising(rows, [t for t, _ in trajectory], run.plots_dir / "denoising.png", sampler=sampler)
