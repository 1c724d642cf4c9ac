"""A Gabor filter bank and the pooled feature vector it gives an image batch.

A Gabor filter is a plane wave under a Gaussian envelope: it responds to strokes of one orientation
and thickness at one place, which is what separates digits better than individual pixel values.
Each image is convolved with the whole bank at once (one ``conv2d`` over the batch), the responses
are rectified and average-pooled over a coarse grid, so the vector is small and tolerant of the
few-pixel shifts between handwritten digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dlfp.errors import DlfpError

NONLINEARITIES = ("abs", "relu", "energy")


@dataclass(frozen=True)
class GaborBank:
    """Kernels (F, k, k) and the (orientation in degrees, wavelength, phase in degrees) of each."""

    kernels: torch.Tensor
    params: list[tuple[float, float, float]]

    def __len__(self) -> int:
        return len(self.params)


def gabor_kernel(
    size: int, theta: float, wavelength: float, phase: float, sigma: float, aspect: float = 1.0
) -> torch.Tensor:
    """One ``size`` x ``size`` Gabor kernel, zero mean and unit L2 norm (float64).

    ``theta`` (radians) is the direction of the wave vector, measured from the image x axis
    (columns) towards y (rows): the filter responds most to stripes that run perpendicular to it.
    Zero mean makes a flat patch give no response; unit norm puts all filters on one scale.
    """
    half = (size - 1) / 2
    coords = torch.arange(size, dtype=torch.float64) - half
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    along = x * math.cos(theta) + y * math.sin(theta)
    across = -x * math.sin(theta) + y * math.cos(theta)
    envelope = torch.exp(-(along**2 + (aspect * across) ** 2) / (2 * sigma**2))
    kernel = envelope * torch.cos(2 * math.pi * along / wavelength + phase)
    kernel = kernel - kernel.mean()
    return kernel / kernel.norm()


def gabor_bank(
    orientations: int,
    wavelengths: list[float],
    phases: list[float],
    kernel_size: int,
    sigma: float | None = None,
    sigma_per_wavelength: float = 0.5,
    aspect: float = 1.0,
    image_size: int | None = None,
) -> GaborBank:
    """All orientations (evenly spaced over 180 degrees) x wavelengths x phases (degrees).

    ``sigma`` (pixels) is the envelope's standard deviation for every filter; when None it is
    ``sigma_per_wavelength`` times each filter's wavelength, which keeps the number of visible
    stripes, and so the orientation selectivity, the same at every scale.
    """
    check_bank(orientations, wavelengths, phases, kernel_size, sigma, sigma_per_wavelength, aspect,
               image_size)
    kernels, params = [], []
    for i in range(orientations):
        theta = math.pi * i / orientations
        for wavelength in wavelengths:
            s = sigma if sigma is not None else sigma_per_wavelength * wavelength
            for phase in phases:
                kernels.append(gabor_kernel(kernel_size, theta, wavelength, math.radians(phase), s, aspect))
                params.append((math.degrees(theta), float(wavelength), float(phase)))
    return GaborBank(torch.stack(kernels).float(), params)


def check_bank(
    orientations: int,
    wavelengths: list[float],
    phases: list[float],
    kernel_size: int,
    sigma: float | None,
    sigma_per_wavelength: float,
    aspect: float,
    image_size: int | None,
) -> None:
    """Refuse a bank that cannot work, naming the setting to change."""
    if orientations < 1 or not wavelengths or not phases:
        raise DlfpError(
            f"the Gabor bank is empty (features.orientations={orientations}, "
            f"features.wavelengths={list(wavelengths)}, features.phases={list(phases)}): "
            "give at least one orientation, one wavelength and one phase"
        )
    if kernel_size < 1:
        raise DlfpError(f"features.kernel_size={kernel_size} must be a positive (odd) number of pixels")
    if kernel_size % 2 == 0:
        raise DlfpError(f"features.kernel_size={kernel_size} must be odd so the filter has a centre pixel")
    if image_size is not None and kernel_size > image_size:
        largest = image_size if image_size % 2 else image_size - 1
        raise DlfpError(
            f"features.kernel_size={kernel_size} is larger than the {image_size}x{image_size} images "
            f"the filters are applied to; use an odd features.kernel_size <= {largest}"
        )
    if any(not w > 0 for w in wavelengths):
        raise DlfpError(f"features.wavelengths must all be positive (pixels), got {list(wavelengths)}")
    if sigma is not None and not sigma > 0:
        raise DlfpError(f"features.sigma={sigma} must be positive (pixels), or null to scale with "
                        "the wavelength")
    if sigma is None and not sigma_per_wavelength > 0:
        raise DlfpError(f"features.sigma_per_wavelength={sigma_per_wavelength} must be positive")
    if not aspect > 0:
        raise DlfpError(f"features.aspect={aspect} must be positive")


def gabor_features(
    images: torch.Tensor,
    bank: GaborBank,
    pool_grid: int,
    nonlinearity: str = "abs",
    chunk: int = 4096,
) -> torch.Tensor:
    """Pooled rectified filter responses, (N, F' * pool_grid**2) float32.

    images: (N, 1, H, W) float. Each filter's response map (same size as the image, zero padding)
    is rectified by ``nonlinearity``: ``abs`` = |r|; ``relu`` = max(r, 0) and max(-r, 0) as two
    channels (dark-on-light and light-on-dark kept apart); ``energy`` = sqrt(r_even^2 + r_odd^2)
    over consecutive phase pairs (phase invariant, needs an even number of phases). The map is then
    averaged over a ``pool_grid`` x ``pool_grid`` grid of cells (``adaptive_avg_pool2d``: cells
    of equal size, overlapping by a pixel when H is not a multiple of the grid). Batched in chunks
    only to bound memory.
    """
    if nonlinearity not in NONLINEARITIES:
        raise DlfpError(f"features.nonlinearity={nonlinearity!r} must be one of {list(NONLINEARITIES)}")
    if nonlinearity == "energy" and len({p[2] for p in bank.params}) % 2:
        raise DlfpError("features.nonlinearity=energy pairs phases (e.g. [0, 90]); give an even number")
    if not 1 <= pool_grid <= images.shape[-1]:
        raise DlfpError(f"features.pool_grid={pool_grid} must be between 1 and the image size "
                        f"{images.shape[-1]}")
    weight = bank.kernels.unsqueeze(1).to(images.device)
    pad = bank.kernels.shape[-1] // 2
    out = []
    for start in range(0, len(images), chunk):
        r = F.conv2d(images[start:start + chunk].float(), weight, padding=pad)
        if nonlinearity == "abs":
            r = r.abs()
        elif nonlinearity == "relu":
            r = torch.cat([r.clamp(min=0), (-r).clamp(min=0)], dim=1)
        else:
            r = (r[:, 0::2] ** 2 + r[:, 1::2] ** 2).sqrt()
        out.append(F.adaptive_avg_pool2d(r, pool_grid).flatten(1))
    return torch.cat(out)
