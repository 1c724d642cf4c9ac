"""The regression study's generalization errors: the largest |f - f*| on an evenly spaced grid inside
the training inputs' range (delta_in) and continued beyond it (delta_out). The task logs them during
training, and the sweep report regenerates a job's grid for its figure."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class GridErrors:
    delta_in: float  # max |f - f*| on the grid over [x_low, x_high]
    delta_out: float  # the same on the grid continued to extrapolate_to

    def as_dict(self) -> dict[str, float]:
        return {"delta_in": self.delta_in, "delta_out": self.delta_out}


class Grid:
    """Evenly spaced points: ``points`` of them span [low, high]; the same spacing continues to
    ``out_high``, so the delta_out grid contains the delta_in grid and delta_out >= delta_in."""

    def __init__(self, low: float, high: float, out_high: float, points: int,
                 device: torch.device) -> None:
        step = (high - low) / (points - 1)
        total = points + math.floor((out_high - high) / step + 1e-9)
        self.points = points
        # rounded to float32, the network's precision, so f* is evaluated at the inputs it sees
        x = (low + step * torch.arange(total, dtype=torch.float64)).float().double()
        self.x = x.unsqueeze(1).to(device)

    @torch.no_grad()
    def errors(self, model: nn.Module, target) -> GridErrors:
        was_training = model.training
        model.eval()
        error = (model(self.x.float()).double() - target(self.x)).abs().squeeze(1)
        model.train(was_training)
        return GridErrors(delta_in=float(error[: self.points].max()), delta_out=float(error.max()))
