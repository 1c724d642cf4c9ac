"""ResNet-18/34/50 for 32x32 images: torchvision's BasicBlock and Bottleneck (v1.5: the stride on
the 3x3 convolution) with a 3x3 stride-1 stem and no max-pool, so a CIFAR image keeps its
resolution into the first stage (He et al. 2016). ``preact=True`` orders each block
BatchNorm -> ReLU -> conv (He et al. 2016, "Identity Mappings"), the ordering the study names."""

from __future__ import annotations

import torch
from torch import nn

from dlfp.models.classifier import Classifier

LAYOUTS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


def conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)


class Block(nn.Module):
    """A residual block: ``kind`` basic (3x3, 3x3) or bottleneck (1x1, 3x3, 1x1 with 4x the width
    out), post-activation (conv -> BN -> ReLU, ReLU after the sum) or pre-activation."""

    def __init__(self, kind: str, c_in: int, width: int, stride: int, preact: bool) -> None:
        super().__init__()
        self.preact = preact
        c_out = width * (4 if kind == "bottleneck" else 1)
        if kind == "basic":
            convs = [conv3x3(c_in, width, stride), conv3x3(width, width)]
        else:
            convs = [conv1x1(c_in, width), conv3x3(width, width, stride), conv1x1(width, c_out)]
        self.convs = nn.ModuleList(convs)
        # post-activation: a BN after each conv; pre-activation: a BN before each conv
        self.norms = nn.ModuleList(nn.BatchNorm2d(c.in_channels if preact else c.out_channels) for c in convs)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            layers = [conv1x1(c_in, c_out, stride)] + ([] if preact else [nn.BatchNorm2d(c_out)])
            self.shortcut = nn.Sequential(*layers)
        self.c_out = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:
            out = torch.relu(self.norms[0](x))
            shortcut = self.shortcut(out) if self.shortcut is not None else x
            out = self.convs[0](out)
            for conv, norm in zip(self.convs[1:], self.norms[1:]):
                out = conv(torch.relu(norm(out)))
            return out + shortcut
        out = x
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            out = norm(conv(out))
            if i < len(self.convs) - 1:
                out = torch.relu(out)
        return torch.relu(out + (self.shortcut(x) if self.shortcut is not None else x))


class ResNet(Classifier):
    """stem (3x3 conv, BN, ReLU) -> 4 stages of blocks (64, 128, 256, 512 wide; stride 2 from the
    second on) -> global average pooling -> Linear to ``num_classes``."""

    def __init__(self, depth: int, in_channels: int, num_classes: int, zero_init_residual: bool,
                 preact: bool) -> None:  # defaults: ResNetConfig (dlfp.models.model_from_schema)
        super().__init__()
        if depth not in LAYOUTS:
            raise ValueError(f"ResNet depth {depth} is not one of {sorted(LAYOUTS)}")
        kind, counts = LAYOUTS[depth]
        self.num_classes, self.in_channels = num_classes, in_channels
        self.stem = nn.Sequential(conv3x3(in_channels, 64), *([] if preact else
                                                              [nn.BatchNorm2d(64), nn.ReLU(inplace=True)]))
        blocks, c_in = [], 64
        for stage, (width, count) in enumerate(zip((64, 128, 256, 512), counts)):
            for i in range(count):
                block = Block(kind, c_in, width, stride=2 if stage > 0 and i == 0 else 1, preact=preact)
                blocks.append(block)
                c_in = block.c_out
        self.blocks = nn.Sequential(*blocks)
        self.head_norm = (nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(inplace=True)) if preact
                          else nn.Identity())
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual and not preact:  # each block starts as the identity (Goyal et al. 2017)
            for block in blocks:
                nn.init.zeros_(block.norms[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head_norm(self.blocks(self.stem(x)))
        return self.fc(out.mean(dim=(2, 3)))
