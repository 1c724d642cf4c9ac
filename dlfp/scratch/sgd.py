"""Stochastic gradient descent with PyTorch's update rule, so the NumPy and torch runs match."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class SGD:
    """``torch.optim.SGD`` (dampening 0) on (name, value, gradient) triples, updated in place.

    Per parameter: d = g + weight_decay * p (weights only, i.e. arrays with ndim > 1, as the torch
    tasks do); with momentum, buf = momentum * buf + d (buf = d on the first step) and d = buf, or
    d + momentum * buf with Nesterov; then p -= lr * d.
    """

    def __init__(
        self,
        params: Sequence[tuple[str, np.ndarray, np.ndarray]],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"lr, momentum and weight_decay must be >= 0 (got {lr}, {momentum}, {weight_decay})")
        if nesterov and momentum == 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.params = list(params)
        self.lr, self.momentum, self.weight_decay, self.nesterov = lr, momentum, weight_decay, nesterov
        self._scratch = [np.empty_like(p) for _, p, _ in self.params]  # preallocated: no per-step allocation
        self.buffers: dict[str, np.ndarray] = {}  # momentum buffers by parameter name, made on first use

    def step(self, lr: float | None = None) -> None:
        """One update with the current gradients; ``lr`` overrides the base rate (for schedules)."""
        lr = self.lr if lr is None else lr
        for (name, p, g), tmp in zip(self.params, self._scratch):
            d = g
            if self.weight_decay and p.ndim > 1:
                np.multiply(p, self.weight_decay, out=tmp)
                tmp += g
                d = tmp
            if self.momentum:
                buf = self.buffers.get(name)
                if buf is None:
                    buf = self.buffers[name] = d.copy()
                else:
                    buf *= self.momentum
                    buf += d
                if self.nesterov:
                    d = np.add(d, self.momentum * buf, out=tmp)
                else:
                    d = buf
            np.multiply(d, lr, out=tmp)
            p -= tmp

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: buf.copy() for name, buf in self.buffers.items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.buffers = {name: np.array(buf) for name, buf in state.items()}
