"""ddpm= and model=unet: the diffusion study (experiment=ddpm)."""

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
class UNetConfig:
    _target_: str = "dlfp.models.unet.UNet"
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
    timesteps: int = limit(1000, ge=2)  # T
    noise: NoiseKind = NoiseKind.linear
    variance: PosteriorVariance = PosteriorVariance.beta
    clip: bool = True  # clip the predicted x_0 to [-1, 1] at every sampling step
    eta: float = limit(0.0, ge=0, le=1)  # DDIM's stochasticity in the figures (0: deterministic, 1: DDPM's)
    sample_seed: int = limit(0, **SEED)  # noise of the figures and of the quality evaluation
    grid_sampler_steps: int = limit(100, ge=1)  # DDIM steps of plots/samples.png and denoising.png
    grid_images: int = limit(64, ge=1)
    loss_images: int = limit(500, ge=1)  # validation images for the loss per timestep bucket
    loss_buckets: int = limit(10, ge=1)
    quality: QualityConfig = field(default_factory=QualityConfig)

    RULES: ClassVar = (
        Rule(("grid_sampler_steps", "timesteps"), lambda steps, T: steps <= T,
             "DDIM takes at most T steps: set grid_sampler_steps <= timesteps"),
        Rule(("loss_buckets", "timesteps"), lambda buckets, T: buckets <= T,
             "each timestep bucket needs a timestep of its own: set loss_buckets <= timesteps"),
    )


SCHEMAS = {"ddpm": {"ddpm": DDPMSectionConfig}, "model": {"unet": UNetConfig}}
