"""The NumPy network's update for the engine's driver: forward, hand-written backward, SGD.

It fills the driver's ``Update`` contract without torch autograd: the lr comes from the driver's
schedule, the state is NumPy arrays (the driver writes them to an ``.npz`` checkpoint read with
``allow_pickle=False``), and evaluation needs no mode switch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from dlfp.scratch.loss import SoftmaxCrossEntropy
from dlfp.scratch.network import Network
from dlfp.scratch.sgd import SGD


def clip_grad_norm(grads: list[np.ndarray], max_norm: float) -> float:
    """Scale all gradients together so their global L2 norm is at most ``max_norm`` (torch's rule)."""
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    coef = max_norm / (norm + 1e-6)
    if coef < 1:
        for g in grads:
            g *= coef
    return norm


class ScratchUpdate:
    """One SGD step on the mean softmax cross-entropy of a batch ``{"x": images, "y": labels}``."""

    checkpoint_suffix = ".npz"

    def __init__(self, net: Network, sgd: SGD, grad_clip: float | None = None) -> None:
        self.model, self.sgd, self.grad_clip = net, sgd, grad_clip
        self.loss_fn = SoftmaxCrossEntropy()
        self.grads = [g for _, _, g in net.parameters()]
        self._lr = sgd.lr

    def __call__(self, batch: dict[str, Any]) -> tuple[float, dict[str, float]]:
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run ends in the driver's error
            loss = self.loss_fn.forward(self.model.forward(batch["x"].numpy()), batch["y"].numpy())
            self.model.backward(self.loss_fn.backward())
            if self.grad_clip is not None:
                clip_grad_norm(self.grads, float(self.grad_clip))
            self.sgd.step(self._lr)
        return loss, {}

    def set_lr(self, factor: float) -> None:
        self._lr = self.sgd.lr * factor

    @property
    def lr(self) -> float:
        return self._lr

    @contextlib.contextmanager
    def evaluation(self, model: Network | None = None) -> Iterator[Network]:
        yield self.model if model is None else model

    def finite(self) -> bool:
        return all(bool(np.isfinite(value).all()) for _, value, _ in self.model.parameters())

    def model_config(self) -> dict | None:
        return {"_target_": "dlfp.scratch.network.build_patch_mlp", **self.model.arch}

    def state_dict(self) -> dict[str, Any]:
        return {"params": self.model.state_dict(), "momentum": self.sgd.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["params"])
        self.sgd.load_state_dict(state.get("momentum", {}))
