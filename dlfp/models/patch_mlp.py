"""The study's MNIST network: a patch embedding followed by a fully connected ReLU network."""

from __future__ import annotations

import torch
from torch import nn

from dlfp.models.classifier import Classifier


class PatchMLP(Classifier):
    """image (N, C, H, W) -> patch embedding -> flatten -> [Linear, ReLU] x len(hidden) -> Linear.

    The embedding maps each non-overlapping ``patch_size`` x ``patch_size`` patch to
    ``embed_channels`` features with shared weights: a Conv2d whose kernel equals its stride
    (28x28 -> 7x7x8 for MNIST). It is linear, like a vision transformer's patch embedding.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        patch_size: int,
        embed_channels: int,
        hidden: list[int] | tuple[int, ...],
        num_classes: int,
    ) -> None:  # defaults: PatchMLPConfig (dlfp.models.model_from_schema)
        super().__init__()
        self.num_classes = num_classes
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.in_channels = in_channels
        self.embed = nn.Conv2d(in_channels, embed_channels, kernel_size=patch_size, stride=patch_size)
        grid = image_size // patch_size
        widths = [embed_channels * grid * grid, *hidden]
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], num_classes))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x).flatten(1))
