"""An exponential moving average of a model's weights, evaluated and checkpointed beside them.

After every update: ema = d * ema + (1 - d) * weights, for each parameter; buffers (e.g.
BatchNorm statistics) are copied. Averaged weights often evaluate and sample better than the last
ones (the DDPM uses them); they never feed back into training. With ``warmup``, d is
min(decay, (1 + n) / (10 + n)) after n updates (TensorFlow's num_updates rule), so a short run's
average is not dominated by the initial weights: 0.999 ** 2000 still gives them 14% weight.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from dlfp.errors import DlfpError


class EMA:
    def __init__(self, model: nn.Module, decay: float, warmup: bool = False) -> None:
        if not 0.0 <= decay < 1.0:
            raise DlfpError(f"train.ema_decay={decay} must lie in [0, 1)")
        self.decay, self.warmup, self.updates = float(decay), warmup, 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._pairs = list(zip(self.model.parameters(), model.parameters()))
        self._buffers = list(zip(self.model.buffers(), model.buffers()))

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, self.updates / (9 + self.updates)) if self.warmup else self.decay
        averaged = [a for a, _ in self._pairs]
        torch._foreach_mul_(averaged, decay)
        torch._foreach_add_(averaged, [p for _, p in self._pairs], alpha=1.0 - decay)
        for mine, theirs in self._buffers:
            mine.copy_(theirs)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])


class Lookahead:
    """Weight averaging that feeds back (Zhang et al. 2019; the fast CIFAR trainers' schedule):
    every ``every`` updates, average = d * average + (1 - d) * weights, then weights = average.

    d ramps up as ``decay`` x (progress through the run)^3, so early training runs free and late
    training is smoothed. The average starts at the first pull (d = 0 there: the initial weights
    are no point of the run to pull towards), and the run's last update pulls too (``finish``), so
    every update reaches the final model whatever the budget and ``every``; the model ends on the
    average. BatchNorm running statistics are averaged with the weights (floating-point state only).
    """

    def __init__(self, model: nn.Module, decay: float, every: int, total_steps: int) -> None:
        if not 0.0 <= decay <= 1.0 or every < 1:
            raise DlfpError(f"train.lookahead_decay={decay} must lie in [0, 1] and "
                            f"train.lookahead_every={every} be at least 1")
        self.decay, self.every, self.total = float(decay), int(every), int(total_steps)
        self.model, self.pulls = model, 0
        self.average = {k: v.detach().clone() for k, v in self._state().items()}

    def _state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, step: int) -> None:
        """After update ``step``: the periodic pull."""
        if step % self.every == 0:
            self._pull(step)

    @torch.no_grad()
    def finish(self, step: int) -> None:
        """After the run's last update (the budget's, or where ``train.stop_loss`` stopped it):
        pull the updates since the last pull into the average, unless ``update`` just did."""
        if step % self.every != 0:
            self._pull(step)

    def _pull(self, step: int) -> None:
        decay = self.decay * min(step / self.total, 1.0) ** 3 if self.pulls else 0.0
        self.pulls += 1
        for key, value in self._state().items():
            self.average[key].lerp_(value, 1.0 - decay)
            value.copy_(self.average[key])

    def state_dict(self) -> dict[str, Any]:
        return {"average": dict(self.average), "pulls": self.pulls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Also a checkpoint written before ``pulls`` was kept (the average alone, begun at the
        initial weights): it continues as it began."""
        for key, value in state.get("average", state).items():
            self.average[key].copy_(value)
        self.pulls = int(state.get("pulls", 1))
