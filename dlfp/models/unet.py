"""A small UNet that predicts the noise eps of x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (Ho et al.
2020), sized to train on MNIST on a CPU.

Down path: a 3x3 stem, then at each level ``blocks`` residual blocks of width ``widths[i]`` and a
stride-2 convolution to the next level (28 -> 14 -> 7 for three widths). Middle: residual block,
(attention), residual block. The up path mirrors the down path: every block takes the output of its
mirror-image down block concatenated to its input (the skip connections), and each level ends with
nearest-neighbour x2 and a 3x3 convolution. A residual block is GroupNorm -> SiLU -> conv, twice,
with the time embedding (sinusoidal -> MLP) added in between, so every block knows the noise level.

``attention=True`` adds single-head self-attention after every block at the lowest resolution (7x7
for MNIST: 49 positions, so its quadratic cost is negligible) and in the middle. Default PyTorch
initialisation everywhere (no zero-initialised output layers), so every parameter gets a gradient
from the first step. Constructor arguments are plain ints, lists, bools and floats, so a checkpoint
can store them as JSON and rebuild the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) timesteps -> (B, dim): [sin(t w_i), cos(t w_i)], w_i = 10000^(-i / (dim/2)), the
    Transformer's frequencies; integer or fractional t, so the model need not know T."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """GN -> SiLU -> conv3x3, + Linear(time), GN -> SiLU -> dropout -> conv3x3, plus a shortcut
    (1x1 conv when the width changes)."""

    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(groups, c_in), nn.GroupNorm(groups, c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.drop = nn.Dropout(dropout)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return h + self.shortcut(x)


class Attention(nn.Module):
    """x + W_out softmax(Q K^T / sqrt(C)) V over the H*W positions, after a GroupNorm; one head."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(2, 3).unbind(1)  # (B, HW, C)
        y = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(y.transpose(1, 2).reshape(b, c, h, w))


def size_multiple(widths: Sequence[int]) -> int:
    """Image sides must be multiples of this: each level after the first halves them."""
    return 2 ** (len(widths) - 1)


class UNet(nn.Module):
    """eps_theta(x_t, t): (B, C, H, W) and (B,) integer timesteps -> (B, C, H, W).

    H and W must be divisible by 2^(len(widths) - 1); every width by ``groups``. The defaults
    (widths 32, 64, 64; one block per level; no attention) have 773,793 parameters (824,097 with
    attention).
    """

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (32, 64, 64), blocks: int = 1,
                 attention: bool = False, groups: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or blocks < 1 or any(w % groups for w in widths):
            raise ValueError(f"UNet needs at least one width, blocks >= 1 and widths divisible by "
                             f"groups={groups}; got widths={widths}, blocks={blocks}")
        self.widths, self.levels = widths, len(widths)
        time_dim = 4 * widths[0]
        self.time_mlp = nn.Sequential(nn.Linear(widths[0], time_dim), nn.SiLU(),
                                      nn.Linear(time_dim, time_dim))
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)

        def res(c_in: int, c_out: int) -> ResBlock:
            return ResBlock(c_in, c_out, time_dim, groups, dropout)

        def attn(level: int) -> nn.Module:
            low = attention and level == self.levels - 1
            return Attention(widths[level], groups) if low else nn.Identity()

        self.down, self.down_attn, self.downsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i, w in enumerate(widths):
            self.down.append(nn.ModuleList(res(w, w) for _ in range(blocks)))
            self.down_attn.append(nn.ModuleList(attn(i) for _ in range(blocks)))
            if i < self.levels - 1:
                self.downsample.append(nn.Conv2d(w, widths[i + 1], 3, stride=2, padding=1))
        last = widths[-1]
        self.mid1, self.mid_attn, self.mid2 = res(last, last), attn(self.levels - 1), res(last, last)
        self.up, self.up_attn, self.upsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(self.levels)):  # stored top (lowest resolution) first, the order used
            w = widths[i]
            self.up.append(nn.ModuleList(res(2 * w, w) for _ in range(blocks)))
            self.up_attn.append(nn.ModuleList(attn(i) for _ in range(blocks)))
            if i > 0:
                self.upsample.append(nn.Conv2d(w, widths[i - 1], 3, padding=1))
        self.out_norm = nn.GroupNorm(groups, widths[0])
        self.out = nn.Conv2d(widths[0], in_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        factor = size_multiple(self.widths)
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"image size {tuple(x.shape[-2:])} must be divisible by {factor} "
                             f"for {self.levels} levels")
        temb = self.time_mlp(timestep_embedding(t, self.widths[0]))
        h = self.stem(x)
        skips = []
        for i in range(self.levels):
            for block, attn in zip(self.down[i], self.down_attn[i]):
                h = attn(block(h, temb))
                skips.append(h)
            if i < self.levels - 1:
                h = self.downsample[i](h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for j in range(self.levels):
            for block, attn in zip(self.up[j], self.up_attn[j]):
                h = attn(block(torch.cat([h, skips.pop()], dim=1), temb))
            if j < self.levels - 1:
                h = self.upsample[j](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(F.silu(self.out_norm(h)))
