"""regression=: the regression study's error grid, input map and fast update (experiment=regression)."""

from __future__ import annotations

from dataclasses import dataclass

from dlfp.config.checks import limit


@dataclass
class RegressionConfig:
    full_batch: bool = True  # every update uses all n points; false: minibatches of train.batch_size
    standardize_inputs: bool = True  # the MLP sees (x - mean) / std of U[x_low, x_high]
    fast_mlp_step: bool = True  # MLP + SGD: hand-written update (same arithmetic); false: autograd
    extrapolate_to: float = 1.5  # delta_out's grid runs from dataset.x_low to here
    grid_points: int = limit(2001, ge=2)  # grid points on [x_low, x_high] for delta_in; same spacing beyond


SCHEMAS = {"regression": {"regression": RegressionConfig}}
