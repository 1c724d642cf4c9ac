"""A plain fully connected ReLU network, the function approximator of the regression study."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """x (N, in_features) -> standardise -> [Linear, ReLU] x depth -> Linear -> (N, out_features).

    ``depth`` counts the hidden layers (each a Linear of ``width`` units and a ReLU), so depth=3
    has four weight matrices: in->width, width->width, width->width and width->out. The output
    layer is linear, so outside the training inputs the network continues piecewise linearly.

    The input is first mapped to (x - input_mean) / input_std, fixed buffers saved with the
    weights. The default (0, 1) leaves it as it is; the regression task passes the moments of
    the input distribution, because with PyTorch's initialisation the first layer's ReLU kinks
    then spread over the whole support instead of crowding near x = 0 (see the README).

    The defaults are model=mlp's (the study's network), kept here because scripts and tests
    build it without config (scripts/bench_regression_step.py).
    """

    def __init__(self, in_features: int = 1, out_features: int = 1, depth: int = 3,
                 width: int = 256, input_mean: float = 0.0, input_std: float = 1.0) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be positive, got depth={depth} width={width}")
        if not input_std > 0:
            raise ValueError(f"input_std must be positive, got {input_std}")
        self.register_buffer("input_mean", torch.tensor(float(input_mean)))
        self.register_buffer("input_std", torch.tensor(float(input_std)))
        widths = [in_features] + [width] * depth
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        layers.append(nn.Linear(width, out_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers((x - self.input_mean) / self.input_std)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss: the mean squared error of ``batch["x"]``'s outputs against ``batch["y"]``."""
        return ((self(batch["x"]) - batch["y"]) ** 2).mean()
