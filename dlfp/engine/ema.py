"""An exponential moving average of a model's weights, evaluated and checkpointed beside them.

After every update: ema = decay * ema + (1 - decay) * weights, for each parameter; buffers (e.g.
BatchNorm statistics) are copied. Averaged weights often evaluate and sample better than the last
ones (the DDPM uses them); they never feed back into training.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from dlfp.errors import DlfpError


class EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise DlfpError(f"train.ema_decay={decay} must lie in [0, 1)")
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._pairs = list(zip(self.model.parameters(), model.parameters()))
        self._buffers = list(zip(self.model.buffers(), model.buffers()))

    @torch.no_grad()
    def update(self) -> None:
        averaged = [a for a, _ in self._pairs]
        torch._foreach_mul_(averaged, self.decay)
        torch._foreach_add_(averaged, [p for _, p in self._pairs], alpha=1.0 - self.decay)
        for mine, theirs in self._buffers:
            mine.copy_(theirs)

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state)
