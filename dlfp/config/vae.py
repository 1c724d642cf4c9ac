"""vae=: the VAE study's data selection, ELBO/IWAE sampling and figures (experiment=vae)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class VAEDataConfig:
    per_class: int = 1000  # training images per digit, class-balanced
    val_images: int = 100  # held-out images for the validation log-likelihood
    strict_balance: bool = False  # true: error if a digit has fewer than per_class images
    threshold: float = 128.0  # pixel (0..255, after downsampling) > threshold -> 1
    downsample: int = 2  # area-average factor: 28x28 -> 14x14
    selection_seed: int = 0  # which images of each digit are chosen


@dataclass
class VAETraversalConfig:
    dims: list[int] | None = None  # two latent dimensions; null picks the two with the largest KL
    span: float = 3.0  # +-span prior standard deviations around the mean
    steps: int = 9  # grid points per dimension


@dataclass
class VAESectionConfig:
    data: VAEDataConfig = field(default_factory=VAEDataConfig)
    mc_samples: int = 2  # Monte Carlo samples of z per image in the training ELBO
    eval_mc_samples: int = 100  # samples per image for the validation/final ELBO
    iwae_k: list[int] = field(default_factory=lambda: [1, 10, 100, 1000])  # final log p(x) bounds
    iwae_chunk: int = 100  # importance samples evaluated at once (memory bound)
    eval_seed: int = 0  # noise of every evaluation, kept apart from the training noise
    num_samples: int = 64  # images in plots/samples.png
    sample_threshold: float | None = None  # null: show Bernoulli means; else binarise them at this
    traversal: VAETraversalConfig = field(default_factory=VAETraversalConfig)


SCHEMAS = {"vae": {"vae": VAESectionConfig}}
