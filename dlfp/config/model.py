"""model=: torch modules, built with ``dlfp.models.build_model`` from ``_target_`` and these fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dlfp.config.checks import Rule, limit


@dataclass
class PatchMLPConfig:
    _target_: str = "dlfp.models.patch_mlp.PatchMLP"
    in_channels: int = limit(1, ge=1)
    image_size: int = limit(28, ge=1)
    patch_size: int = limit(4, ge=1)
    embed_channels: int = limit(8, ge=1)
    hidden: list[int] = limit(factory=lambda: [256], ge=1)
    num_classes: int = limit(10, ge=2)

    RULES: ClassVar = (Rule(("image_size", "patch_size"), lambda size, patch: size % patch == 0,
                            "the patches must tile the image (image_size a multiple of patch_size)"),)


@dataclass
class SmallCNNConfig:
    _target_: str = "dlfp.models.small_cnn.SmallCNN"
    in_channels: int = limit(1, ge=1)
    num_classes: int = limit(10, ge=2)
    widths: list[int] = limit(factory=lambda: [32, 64], ge=1)  # per stage: two 3x3 convs, then a 2x2 max-pool
    hidden: int = limit(128, ge=1)  # the penultimate layer: the features (SmallCNN.features)
    dropout: float = limit(0.25, ge=0, lt=1)  # before the output layer
    image_size: int = limit(28, ge=1)

    RULES: ClassVar = (Rule(("image_size", "widths"), lambda size, widths: size % 2 ** len(widths) == 0,
                            "each width halves the image (max-pool 2): image_size must be a multiple "
                            "of 2^len(widths)"),)


@dataclass
class AllCNNConfig:
    _target_: str = "dlfp.models.allcnn.AllCNN"
    in_channels: int = limit(3, ge=1)
    c1: int = limit(96, ge=1)  # channels of the first three convolutions
    c2: int = limit(192, ge=1)  # channels of the rest
    num_classes: int = limit(10, ge=2)
    dropout: float = limit(0.5, ge=0, lt=1)  # after each stride-2 convolution


@dataclass
class ResNetConfig:
    _target_: str = "dlfp.models.resnet.ResNet"
    depth: int = 18  # 18 | 34 | 50
    in_channels: int = limit(3, ge=1)
    num_classes: int = limit(10, ge=2)
    zero_init_residual: bool = False  # each block's last BatchNorm starts at 0: blocks start as identities
    preact: bool = False  # BatchNorm -> ReLU -> conv inside each block (pre-activation)

    RULES: ClassVar = (Rule(("depth",), lambda depth: depth in (18, 34, 50), "must be 18, 34 or 50"),)


@dataclass
class FastNetConfig:
    _target_: str = "dlfp.models.fastnet.FastNet"
    in_channels: int = limit(3, ge=1)
    widths: list[int] = limit(factory=lambda: [64, 256, 256], ge=1)  # channels of the three conv groups
    num_classes: int = limit(10, ge=2)
    whiten_kernel: int = limit(2, ge=1)  # patch size of the frozen whitening convolution
    logit_scale: float = limit(1 / 9, gt=0)  # multiplies the logits
    bn_momentum: float = limit(0.4, gt=0, le=1)  # torch's convention: weight of the new batch statistics
    bn_eps: float = limit(1e-12, gt=0)
    whiten_bias_epochs: int | None = limit(3, ge=0)  # the whitening bias trains this long (null: always)
    image_size: int = limit(32, ge=1)  # height and width of the input images
    head_std: float | None = limit(None, gt=0)  # null: torch's init; else the head's weights rescaled to it

    RULES: ClassVar = (Rule(("image_size", "whiten_kernel", "widths"),
                            lambda size, kernel, widths: size - kernel + 1 >= 2 ** len(widths),
                            "the whitening conv leaves image_size - whiten_kernel + 1 pixels a side, which "
                            "each conv group halves (max-pool 2): it must be at least 2^len(widths) "
                            "(whiten_kernel <= 25 for 3 groups on 32x32 images)"),)


@dataclass
class MLPConfig:
    _target_: str = "dlfp.models.mlp.MLP"
    in_features: int = limit(1, ge=1)
    out_features: int = limit(1, ge=1)
    depth: int = limit(3, ge=1)  # hidden layers (Linear + ReLU each); the output layer is not counted
    width: int = limit(256, ge=1)  # units per hidden layer


@dataclass
class VAEConfig:
    _target_: str = "dlfp.models.vae.VAE"
    input_dim: int = limit(196, ge=1)  # 14x14 binarised pixels
    hidden: int = limit(128, ge=1)  # tanh layer in both encoder and decoder
    latent_dim: int = limit(8, ge=1)


@dataclass
class TransformerConfig:
    _target_: str = "dlfp.models.transformer.TransformerLM"
    vocab_size: int | None = limit(None, ge=2)  # null: the tokenizer's vocabulary size
    d_model: int = limit(256, ge=1)
    heads: int = limit(2, ge=1)
    head_dim: int | None = limit(None, ge=1)  # per head; null: d_model / heads
    layers: int = limit(4, ge=1)
    context: int = limit(128, ge=2)  # positions the model sees (tokens per training window)
    mlp_hidden: int | None = limit(None, ge=1)  # null: 2 x d_model, the study's
    dropout: float = limit(0.0, ge=0, lt=1)
    tie_weights: bool = False  # the output layer shares the embedding matrix
    sdpa: bool = False  # F.scaled_dot_product_attention instead of the written-out attention

    RULES: ClassVar = (Rule(("d_model", "heads", "head_dim"), lambda d, h, p: p is not None or d % h == 0,
                            "d_model must be a multiple of heads (or set head_dim)"),)


SCHEMAS = {"model": {"patch_mlp": PatchMLPConfig, "small_cnn": SmallCNNConfig, "mlp": MLPConfig,
                     "vae": VAEConfig, "allcnn_t": AllCNNConfig, "resnet": ResNetConfig,
                     "fastnet": FastNetConfig, "transformer": TransformerConfig}}
