"""ddpm= and model=unet: the diffusion study (experiment=ddpm) and its model."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from dlfp.config.checks import SEED, Rule, limit


class NoiseKind(StrEnum):
    linear = "linear"  # beta from 1e-4 to 0.02 (Ho et al. 2020), both scaled by 1000 / T
    cosine = "cosine"  # Nichol & Dhariwal 2021


class PosteriorVariance(StrEnum):
    beta = "beta"  # sigma_t^2 = beta_t
    beta_tilde = "beta_tilde"  # sigma_t^2 = (1 - abar_{t-1}) / (1 - abar_t) beta_t


@dataclass
class DiffusionConfig:
    """The diffusion model (dlfp/models/diffusion.py): the process it is trained for and its UNet.
    The checkpoint's model_config holds all of it, so the checkpoint alone rebuilds the sampler."""

    _target_: str = "dlfp.models.diffusion.Diffusion"
    timesteps: int = limit(1000, ge=2)  # T
    noise: NoiseKind = NoiseKind.linear
    image_size: int = limit(28, ge=1)  # height and width of the images it learns and samples
    in_channels: int = limit(1, ge=1)
    widths: list[int] = limit(factory=lambda: [32, 64, 64], ge=1)  # channels at 28, 14 and 7 pixels
    blocks: int = limit(1, ge=1)  # residual blocks per level
    attention: bool = False  # self-attention at the lowest resolution (7x7)
    groups: int = limit(8, ge=1)  # GroupNorm groups; every width must be a multiple
    dropout: float = limit(0.0, ge=0, lt=1)

    RULES: ClassVar = (
        Rule(("widths",), lambda widths: len(widths) >= 1, "give at least one width"),
        Rule(("widths", "groups"), lambda widths, groups: all(w % groups == 0 for w in widths),
             "GroupNorm splits every width into groups: each width must be a multiple of groups"),
        Rule(("image_size", "widths"), lambda size, widths: size % 2 ** max(len(widths) - 1, 0) == 0,
             "each width after the first halves the image: image_size must be a multiple of "
             "2^(len(widths) - 1); use fewer widths"),
    )


@dataclass
class QualityConfig:
    classifier: str | None = None  # a run dir (or checkpoint) of experiment=mnist_cnn; null: no scores
    samples: int = limit(100, ge=2)  # generated images per row: about 3 minutes in all on 2 CPU cores
    reference_images: int = limit(10000, ge=2)  # real images (test split, else validation) for the reference
    ddpm: bool = True  # score ancestral DDPM with all T steps
    ddim_steps: list[int] = limit(factory=lambda: [100, 50, 20, 10], ge=1)  # DDIM rows: each S ...
    ddim_etas: list[float] = limit(factory=lambda: [0.0, 1.0], ge=0, le=1)  # ... with each eta
    vae: str | None = None  # a run dir of experiment=vae: its samples as a row beside the DDPM's
    bootstrap: int = limit(10, ge=2)  # resamples for the Frechet distance's sampling error
    batch_size: int = limit(250, ge=1)  # images generated at once


@dataclass
class DDPMSectionConfig:
    """The study's settings: sampling, figures, the loss per timestep and quality. The process
    itself (T, the noise schedule, the image size) is the model's (``model=unet``)."""

    variance: PosteriorVariance = PosteriorVariance.beta
    clip: bool = True  # clip the predicted x_0 to [-1, 1] at every sampling step
    eta: float = limit(0.0, ge=0, le=1)  # DDIM's stochasticity in the figures (0: deterministic, 1: DDPM's)
    sample_seed: int = limit(0, **SEED)  # noise of the figures and of the quality evaluation
    grid_sampler_steps: int = limit(100, ge=1)  # DDIM steps of plots/samples.png and denoising.png
    grid_images: int = limit(64, ge=1)
    loss_images: int = limit(500, ge=1)  # validation images for the loss per timestep bucket
    loss_buckets: int = limit(10, ge=1)
    quality: QualityConfig = field(default_factory=QualityConfig)


SCHEMAS = {"ddpm": {"ddpm": DDPMSectionConfig}, "model": {"unet": DiffusionConfig}}
