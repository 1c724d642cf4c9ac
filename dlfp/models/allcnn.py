"""All-CNN-T: the All-CNN-C layout (Springenberg et al. 2015, "Striving for Simplicity") with
c1 = 96 and c2 = 192 channels and BatchNorm, as the study trains it on CIFAR-10."""

from __future__ import annotations

import torch
from torch import nn

from dlfp.models.classifier import Classifier


def conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """conv (no bias: the BatchNorm after it has one) -> BatchNorm -> ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class AllCNN(Classifier):
    """3x3 c1, 3x3 c1, 3x3 c1 stride 2, dropout, 3x3 c2, 3x3 c2, 3x3 c2 stride 2, dropout,
    3x3 c2, 1x1 c2, 1x1 num_classes, global average pooling; BatchNorm -> ReLU after every conv,
    as the study specifies (the last one too, as in All-CNN-C). Only convolutions have weights
    besides BatchNorm: 1,368,480 of them for c1 = 96, c2 = 192 and 10 classes."""

    def __init__(self, in_channels: int, c1: int, c2: int, num_classes: int,
                 dropout: float) -> None:  # defaults: AllCNNConfig (dlfp.models.model_from_schema)
        super().__init__()
        self.num_classes, self.in_channels = num_classes, in_channels
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, c1, 3), conv_bn_relu(c1, c1, 3), conv_bn_relu(c1, c1, 3, stride=2),
            nn.Dropout(dropout),
            conv_bn_relu(c1, c2, 3), conv_bn_relu(c2, c2, 3), conv_bn_relu(c2, c2, 3, stride=2),
            nn.Dropout(dropout),
            conv_bn_relu(c2, c2, 3), conv_bn_relu(c2, c2, 1), conv_bn_relu(c2, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))
