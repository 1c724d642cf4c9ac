"""model=: torch modules, built with ``dlfp.models.build_model`` from ``_target_`` and these fields."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PatchMLPConfig:
    _target_: str = "dlfp.models.patch_mlp.PatchMLP"
    in_channels: int = 1
    image_size: int = 28
    patch_size: int = 4
    embed_channels: int = 8
    hidden: list[int] = field(default_factory=lambda: [256])
    num_classes: int = 10


@dataclass
class MLPConfig:
    _target_: str = "dlfp.models.mlp.MLP"
    in_features: int = 1
    out_features: int = 1
    depth: int = 3  # hidden layers (Linear + ReLU each); the output layer is not counted
    width: int = 256  # units per hidden layer


@dataclass
class VAEConfig:
    _target_: str = "dlfp.models.vae.VAE"
    input_dim: int = 196  # 14x14 binarised pixels
    hidden: int = 128  # tanh layer in both encoder and decoder
    latent_dim: int = 8


SCHEMAS = {"model": {"patch_mlp": PatchMLPConfig, "mlp": MLPConfig, "vae": VAEConfig}}
