"""vae=: the VAE study's data selection, ELBO/IWAE sampling and figures (experiment=vae)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from dlfp.config.checks import SEED, Rule, limit


@dataclass
class VAEDataConfig:
    per_class: int = limit(1000, ge=1)  # training images per digit, class-balanced
    val_images: int = limit(100, ge=1)  # held-out images for the validation log-likelihood
    strict_balance: bool = False  # true: error if a digit has fewer than per_class images
    threshold: float = limit(128.0, ge=0, le=255)  # pixel (0..255, after downsampling) > threshold -> 1
    downsample: int = limit(2, ge=1)  # area-average factor: 28x28 -> 14x14
    selection_seed: int = limit(0, **SEED)  # which images of each digit are chosen


@dataclass
class VAETraversalConfig:
    dims: list[int] | None = limit(None, ge=0)  # two latent dimensions; null: the two with the largest KL
    span: float = limit(3.0, gt=0)  # +-span prior standard deviations around the mean
    steps: int = limit(9, ge=2)  # grid points per dimension

    RULES: ClassVar = (Rule(("dims",), lambda dims: dims is None or (len(dims) == 2 and dims[0] != dims[1]),
                            "name two different latent dimensions, or null"),)


@dataclass
class VAESectionConfig:
    data: VAEDataConfig = field(default_factory=VAEDataConfig)
    mc_samples: int = limit(2, ge=1)  # samples of z per image in the training ELBO (given to VAE.loss)
    eval_mc_samples: int = limit(100, ge=1)  # samples per image for the validation/final ELBO
    iwae_k: list[int] = limit(factory=lambda: [1, 10, 100, 1000], ge=1)  # final log p(x) bounds
    iwae_chunk: int = limit(100, ge=1)  # importance samples evaluated at once (memory bound)
    eval_seed: int = limit(0, **SEED)  # noise of every evaluation, kept apart from the training noise
    num_samples: int = limit(64, ge=1)  # images in plots/samples.png
    sample_threshold: float | None = limit(None, gt=0, lt=1)  # null: Bernoulli means; else binarised at it
    traversal: VAETraversalConfig = field(default_factory=VAETraversalConfig)


SCHEMAS = {"vae": {"vae": VAESectionConfig}}
