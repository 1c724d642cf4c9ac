"""Area-average downsampling of uint8 images (MNIST 28x28 -> 14x14 for the SVM and the VAE)."""

from __future__ import annotations

import torch


def area_downsample(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Mean of each non-overlapping ``factor`` x ``factor`` block, as float32 on the 0..255 scale.

    x: (N, C, H, W) with H and W multiples of ``factor``. 28x28 with factor 2 gives 14x14, each output
    pixel the average of the 2x2 block it covers (no smoothing beyond the block).
    """
    n, c, h, w = x.shape
    if h % factor or w % factor:
        raise ValueError(f"image size {h}x{w} is not a multiple of the factor {factor}")
    blocks = x.float().reshape(n, c, h // factor, factor, w // factor, factor)
    return blocks.mean(dim=(3, 5))
