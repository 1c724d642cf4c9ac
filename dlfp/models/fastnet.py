"""FastNet: the small BatchNorm VGG of the fastest CIFAR-10 trainers (Jordan 2024, airbench),
written here from the paper's description.

A frozen 2x2 patch-whitening convolution (its filters are the eigenvectors of the training
images' 2x2 patch covariance, scaled to unit variance, and their negatives), GELU, then three
groups of conv -> max-pool -> BatchNorm -> GELU -> conv -> BatchNorm -> GELU, a 3x3 max-pool to
1x1 and a bias-free linear head whose logits are scaled down (by 1/9). BatchNorm scales are fixed
at 1 (only the shifts learn); convolutions start as partial identities (Dirac) plus noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlfp.errors import DlfpError
from dlfp.models.classifier import Classifier


class FrozenScaleBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose scale stays 1: only the shift is trained (fewer, better-conditioned
    parameters; the next convolution can scale freely)."""

    def __init__(self, channels: int, momentum: float, eps: float) -> None:
        super().__init__(channels, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)


class ConvGroup(nn.Module):
    def __init__(self, c_in: int, c_out: int, bn_momentum: float, bn_eps: float) -> None:
        super().__init__()
        self.conv1 = dirac_conv(c_in, c_out)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = FrozenScaleBatchNorm(c_out, bn_momentum, bn_eps)
        self.conv2 = dirac_conv(c_out, c_out)
        self.norm2 = FrozenScaleBatchNorm(c_out, bn_momentum, bn_eps)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


def dirac_conv(c_in: int, c_out: int) -> nn.Conv2d:
    """3x3 'same' convolution without bias whose first ``c_in`` filters start as identities."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(c_in, c_out)])
    return conv


class FastNet(Classifier):
    def __init__(self, in_channels: int, widths: Sequence[int], num_classes: int, whiten_kernel: int,
                 logit_scale: float, bn_momentum: float, bn_eps: float, whiten_bias_epochs: int | None,
                 image_size: int, head_std: float | None) -> None:  # defaults: FastNetConfig
        super().__init__()
        self.num_classes, self.in_channels, self.image_size = num_classes, in_channels, image_size
        self.whiten_bias_epochs = whiten_bias_epochs
        whiten_width = 2 * in_channels * whiten_kernel**2
        self.whiten = nn.Conv2d(in_channels, whiten_width, whiten_kernel, bias=True)
        self.whiten.weight.requires_grad_(False)  # set from the data by fit_to_data
        nn.init.zeros_(self.whiten.bias)
        widths = (whiten_width, *widths)
        self.groups = nn.Sequential(*(ConvGroup(a, b, bn_momentum, bn_eps)
                                      for a, b in zip(widths, widths[1:])))
        self.head = nn.Linear(widths[-1], num_classes, bias=False)
        if head_std is not None:  # rescaled, not redrawn: the same random draws as without it
            with torch.no_grad():
                self.head.weight.mul_(head_std / self.head.weight.std())
        self.logit_scale = float(logit_scale)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(self.act(self.whiten(x)))
        x = torch.amax(x, dim=(2, 3))  # the final 3x3 max-pool: the maps are 3x3 for 32x32 inputs
        return self.head(x) * self.logit_scale

    def set_epoch(self, epoch: int) -> None:
        """The whitening bias trains for the first ``whiten_bias_epochs`` epochs only (null: always);
        frozen, it gets no gradient, so the optimiser leaves it alone."""
        if self.whiten_bias_epochs is not None:
            self.whiten.bias.requires_grad_(epoch < self.whiten_bias_epochs)

    @torch.no_grad()
    def fit_to_data(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the whitening filters from (standardised) training images: each eigenvector v of the
        patch covariance, scaled by 1/sqrt(eigenvalue + eps), and -v. The images must be the
        size the config's checks took (``image_size``), or the max-pools may run out of pixels."""
        if tuple(images.shape[2:]) != (self.image_size,) * 2:
            size = "x".join(map(str, images.shape[2:]))
            raise DlfpError(f"model.image_size={self.image_size} but the training images are {size}; "
                            f"set model.image_size={images.shape[-1]}")
        k = self.whiten.kernel_size[0]
        c = images.shape[1]
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # (n, c, h', w', k, k)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k).double()
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.T.flip(0)  # largest first
        filters = (eigenvectors / torch.sqrt(eigenvalues.clamp_min(0) + eps)[:, None]).reshape(-1, c, k, k)
        self.whiten.weight.copy_(torch.cat([filters, -filters]).to(self.whiten.weight))
