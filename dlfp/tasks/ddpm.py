"""Denoising diffusion (Ho et al. 2020) on MNIST, with its sample quality measured.

Recipe: images to [-1, 1] (``dataset.transforms: [rescale]``); the diffusion model
(``models/diffusion.py``: a time-conditioned UNet with its noise schedule, loss and samplers)
learns to predict the noise of x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps at t uniform on
{0..T-1} (MSE), trained by the shared driver with an EMA of the weights; every evaluation logs the loss in
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
from omegaconf import DictConfig

from dlfp.data import ImageData, Split, load_dataset
from dlfp.data.loader import Loader, transformed
from dlfp.data.transforms import build_transforms
from dlfp.engine.driver import fit
from dlfp.engine.optim import build_optimizer
from dlfp.engine.run import Run
from dlfp.engine.updates import TorchUpdate
from dlfp.errors import DlfpError
from dlfp.eval.diffusion_quality import check_quality_inputs, quality_table
from dlfp.models import build_model
from dlfp.models.diffusion import Diffusion
from dlfp.viz.diffusion import display_images, plot_denoising, plot_loss_per_timestep, plot_noising
from dlfp.viz.mosaic import plot_image_grid

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run: Run) -> dict[str, float]:
    hw, dcfg = run.hw, cfg.ddpm
    check_timesteps(cfg)
    check_quality_inputs(cfg, cfg.model.timesteps)
    data: ImageData = load_dataset(cfg.dataset)
    check_model_fits(cfg.model, data)
    transforms = build_transforms(cfg.dataset.transforms, data)
    loader = Loader(Split(x=data.train.x).to(hw.device), cfg.train.batch_size, shuffle=True,
                    seed=cfg.seed, transforms=transforms, rank=hw.ranks.rank,
                    world_size=hw.ranks.world_size)
    reference_split = data.test if data.test is not None else data.val
    held_out = images_in_range(reference_split, transforms, hw.device)
    model: Diffusion = build_model(cfg.model).to(hw.device)
    if hw.channels_last:
        model.to(memory_format=torch.channels_last)
    loss_images = held_out[: dcfg.loss_images]

    def evaluate(net: Diffusion) -> dict[str, dict[str, float]]:
        return {"val": loss_by_timestep(net, loss_images, dcfg.loss_buckets, dcfg.sample_seed)}

    update = TorchUpdate(model, build_optimizer(cfg.optimizer, model), hw, cfg.train)
    result = fit(update, loader, evaluate, run=run, train_cfg=cfg.train, schedule=cfg.schedule,
                 resume=cfg.resume)
    if not hw.ranks.is_main:  # rank 0 alone scores, samples and writes
        return {}
    sampler_model = (result.ema_model if result.ema_model is not None else model).eval()

    summary: dict[str, float] = {"steps": float(result.steps), "train_images": float(len(data.train))}
    final = result.evaluation.get("val_ema", result.evaluation["val"])  # the weights that sample
    summary.update({f"val/{k}": v for k, v in final.items()})
    figures(run, dcfg, sampler_model, held_out)
    if dcfg.quality.classifier:
        summary.update(quality_table(run, cfg, sampler_model, data))
    else:
        log.info("no sample quality: set ddpm.quality.classifier to a run of experiment=mnist_cnn")
    return summary


def check_timesteps(cfg: DictConfig) -> None:
    """The ddpm section's step counts against the model's T, before any data loads (two sections:
    no one schema's RULES sees both)."""
    steps, buckets, timesteps = cfg.ddpm.grid_sampler_steps, cfg.ddpm.loss_buckets, cfg.model.timesteps
    problems = []
    if steps > timesteps:
        problems.append(f"ddpm.grid_sampler_steps={steps}, model.timesteps={timesteps}: DDIM takes at most "
                        "T steps: set ddpm.grid_sampler_steps <= model.timesteps")
    if buckets > timesteps:
        problems.append(f"ddpm.loss_buckets={buckets}, model.timesteps={timesteps}: each timestep bucket "
                        "needs a timestep of its own: set ddpm.loss_buckets <= model.timesteps")
    if problems:
        raise DlfpError("; ".join(problems))


def check_model_fits(model_cfg: DictConfig, data: ImageData) -> None:
    """The model's image channels and size against the data's images, before it is built."""
    data.check_in_channels(model_cfg.in_channels)
    height, width = data.train.x.shape[-2:]
    size = model_cfg.image_size
    if (height, width) != (size, size):
        raise DlfpError(f"model.image_size={size} but dataset {data.name}'s images are {height}x{width}; "
                        f"set model.image_size={height}")


def images_in_range(split: Split, transforms: list, device: torch.device) -> torch.Tensor:
    """A split's images as the model sees them (``dataset.transforms``: [-1, 1]), on ``device``."""
    return transformed(Split(x=split.x).to(device), transforms)["x"]


@torch.no_grad()
def loss_by_timestep(net: Diffusion, x0: torch.Tensor, buckets: int, seed: int) -> dict[str, float]:
    """The noise-prediction MSE at the centre of each of ``buckets`` equal ranges of t, on the same
    images and noise every time (comparable across evaluations), and their mean."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    width = net.schedule.steps / buckets
    losses: dict[str, float] = {}
    for b in range(buckets):
        t_value = int((b + 0.5) * width)
        t = torch.full((len(x0),), t_value, device=x0.device, dtype=torch.long)
        mse, _ = net.schedule.eps_loss(net, x0, t=t, noise=noise)
        losses[f"loss_t{t_value}"] = mse.item()
    losses["loss"] = float(np.mean(list(losses.values())))
    return losses


def figures(run: Run, dcfg: DictConfig, model: Diffusion, held_out: torch.Tensor) -> None:
    """plots/noising.png, loss.png, loss_per_timestep.png, samples.png and denoising.png."""
    schedule = model.schedule
    steps = [0, *(int(f * (schedule.steps - 1)) for f in (0.1, 0.25, 0.5, 0.75, 1.0))]
    noise = torch.randn(held_out[:6].shape, generator=torch.Generator().manual_seed(0)).to(held_out.device)
    noisy = [schedule.q_sample(held_out[:6], t, noise) for t in steps]
    plot_noising(np.stack([display_images(x) for x in noisy], axis=1), steps, run.plots_dir / "noising.png")
    plot_loss_per_timestep(run.metrics.records(), run.plots_dir)
    generator = torch.Generator().manual_seed(dcfg.sample_seed)
    images, trajectory = model.sample(dcfg.grid_images, sampler="ddim", steps=dcfg.grid_sampler_steps,
                                      eta=dcfg.eta, generator=generator, clip=dcfg.clip, keep=8)
    sampler = f"DDIM, {dcfg.grid_sampler_steps} steps, eta {dcfg.eta:g}"
    plot_image_grid(display_images(images), run.plots_dir / "samples.png", title=f"{sampler}, EMA weights")
    rows = np.stack([display_images(x[:6]) for _, x in trajectory], axis=1)  # (6, snapshots, H, W)
    plot_denoising(rows, [t for t, _ in trajectory], run.plots_dir / "denoising.png", sampler=sampler)
