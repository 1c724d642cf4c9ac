"""Generated one-dimensional regression data: y = f*(x) (+ noise) at n uniform random inputs.

No real data set exists for this study, so the data are generated, from the seed alone: the same
seed gives the same inputs and noise on every machine (NumPy's PCG64 generator).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from dlfp.errors import DlfpError

Target = Callable[[torch.Tensor], torch.Tensor]


def sin_10pi_x4(x: torch.Tensor) -> torch.Tensor:
    """f*(x) = sin(10 pi x^4): slow near 0, ever faster oscillation towards 1 and beyond."""
    return torch.sin(10 * math.pi * x**4)


TARGETS: dict[str, Target] = {"sin_10pi_x4": sin_10pi_x4}


@dataclass(frozen=True)
class Regression1D:
    """Training pairs as (n, 1) float32 columns, the noiseless target and the input interval."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    target: Target
    x_low: float
    x_high: float
    noise_std: float

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def input_moments(self) -> tuple[float, float]:
        """Mean and standard deviation of U[x_low, x_high], the distribution the inputs come from."""
        return (self.x_low + self.x_high) / 2, (self.x_high - self.x_low) / math.sqrt(12)

    def to(self, device: torch.device) -> Regression1D:
        return Regression1D(self.name, self.x.to(device), self.y.to(device), self.target,
                            self.x_low, self.x_high, self.noise_std)


def make_regression1d(target: str, n: int, noise_std: float, x_low: float, x_high: float,
                      seed: int) -> Regression1D:
    """Draw x ~ U[x_low, x_high] and y = f*(x) + noise_std * N(0, 1), both from ``seed``. The
    checks repeat the dataset schema's for callers without config (tests)."""
    if target not in TARGETS:
        raise DlfpError(f"dataset.target={target!r} is unknown; known targets: {', '.join(TARGETS)}")
    if n < 1:
        raise DlfpError(f"dataset.n={n}: the training set needs at least one point")
    if not x_low < x_high:
        raise DlfpError(f"dataset.x_low={x_low} must be below dataset.x_high={x_high}")
    if noise_std < 0:
        raise DlfpError(f"dataset.noise_std={noise_std} must be zero or positive")
    rng = np.random.default_rng(seed)
    # rounded to float32 (the network's precision) first, so y is f* at exactly the inputs it sees
    x = torch.from_numpy(rng.uniform(x_low, x_high, size=(n, 1))).float().double()
    y = TARGETS[target](x) + noise_std * torch.from_numpy(rng.standard_normal((n, 1)))
    return Regression1D(target, x.float(), y.float(), TARGETS[target], x_low, x_high, noise_std)
