"""A small BatchNorm CNN for MNIST: the quality model that scores generated digits.

``experiment=mnist_cnn`` trains it on real MNIST; its checkpoint is the classifier whose
penultimate activations (``features``) give the Fréchet distance of DDPM samples, and whose
softmax gives their class histogram and top-class confidence.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlfp.models.classifier import Classifier

# The input scale: experiment=mnist_cnn trains with dataset.transforms [rescale] (Rescale's defaults,
# low -1 and high 1), so the model sees float pixels x_uint8 / 127.5 - 1 in [-1, 1] (0 = -1, the
# black background; 255 = +1), the DDPM's own scale.
INPUT_RANGE = (-1.0, 1.0)


class SmallCNN(Classifier):
    """image (N, C, 28, 28) float in [-1, 1] -> [conv3x3-BN-ReLU, conv3x3-BN-ReLU, maxpool 2] per
    width -> flatten -> Linear(hidden) -> ReLU (= ``features``) -> dropout -> Linear(num_classes).

    Input: what experiment=mnist_cnn's loader yields with ``dataset.transforms: [rescale]``: float32
    (N, 1, 28, 28), pixel value v (uint8 0..255) as v / 127.5 - 1, in [-1, 1]. Images in the DDPM's
    [-1, 1] therefore go in as they are (clamp samples that overshoot); uint8 images or float images
    on 0..1 go through ``to_input`` first. A model trained with another ``dataset.transforms`` (e.g.
    ``standardize``) expects that transform's scale instead.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: Sequence[int],
        hidden: int,
        dropout: float,
        image_size: int,
    ) -> None:  # defaults: SmallCNNConfig (dlfp.models.model_from_schema)
        super().__init__()
        if image_size % 2 ** len(widths):
            raise ValueError(f"image_size {image_size} is not divisible by 2^{len(widths)} "
                             "(one 2x2 max-pool per width)")
        self.in_channels, self.num_classes, self.hidden = in_channels, num_classes, hidden
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            for _ in range(2):
                layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                           nn.ReLU(inplace=True)]
                channels = width
            layers.append(nn.MaxPool2d(2))
        side = image_size // 2 ** len(widths)
        self.conv = nn.Sequential(*layers)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(channels * side * side, hidden),
                                   nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate activations (N, hidden): after the hidden layer's ReLU, before dropout."""
        return self.embed(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @staticmethod
    def to_input(images: torch.Tensor, low: float | None = None, high: float | None = None) -> torch.Tensor:
        """Images with values on [low, high] mapped linearly onto the model's input scale [-1, 1] and
        clamped to it. Defaults: uint8 images on 0..255 (the result equals the training transform
        ``rescale`` bit for bit: v * (2 / 255) - 1), float images on [-1, 1] (the DDPM's samples: only
        the clamp). For float images on 0..1 pass ``low=0, high=1``."""
        if low is None or high is None:
            low, high = (0.0, 255.0) if images.dtype == torch.uint8 else (-1.0, 1.0)
        x = images.to(torch.float32, copy=True).mul_(2.0 / (high - low)).add_(-1.0 - 2.0 * low / (high - low))
        return x.clamp_(*INPUT_RANGE)
