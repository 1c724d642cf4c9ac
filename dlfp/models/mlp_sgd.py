"""A hand-written training step for the MLP under SGD: autograd's arithmetic without its bookkeeping.

For the regression MLP (four small matrices, batches of at most 64 points) an autograd update is
mostly per-operation overhead: recording the graph, walking it back, and the optimiser's
per-parameter loop. This step computes the same gradient of the mean squared error by hand and
applies torch.optim.SGD's update rule to the same parameters, with the optimiser's current
hyperparameters and momentum buffers, so learning-rate schedules and the optimiser's state work as
before. ``scripts/bench_regression_step.py`` measures the speed-up; ``tests/test_regression.py``
checks that parameters match autograd + torch.optim.SGD update for update.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dlfp.models.mlp import MLP


def manual_step(model: nn.Module, optimizer: torch.optim.Optimizer
                ) -> Callable[[dict[str, torch.Tensor]], torch.Tensor] | None:
    """The hand-written step on a batch {x, y}, as ``TorchUpdate(manual_step=...)`` takes it, where
    it applies (an MLP under SGD); None otherwise, so autograd on ``model.loss`` runs instead."""
    if not MLPSGDStep.supports(model, optimizer):
        return None
    step = MLPSGDStep(model, optimizer)
    return lambda batch: step.step(batch["x"], batch["y"])


class MLPSGDStep:
    """``step(x, y)``: one SGD update of ``model`` on the mean squared error of (x, y), the MLP's
    ``loss``; returns that error (before the update), as the driver logs it."""

    def __init__(self, model: MLP, optimizer: torch.optim.Optimizer) -> None:
        if not self.supports(model, optimizer):
            raise ValueError("MLPSGDStep needs an MLP and a torch.optim.SGD without maximize")
        self.model, self.optimizer = model, optimizer
        self.linears = [m for m in model.layers if isinstance(m, nn.Linear)]

    @staticmethod
    def supports(model: nn.Module, optimizer: torch.optim.Optimizer) -> bool:
        return (type(model) is MLP and type(optimizer) is torch.optim.SGD
                and not any(group.get("maximize", False) for group in optimizer.param_groups))

    @torch.no_grad()
    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss, grads = self._gradients(x, y)
        self._sgd(grads)
        return loss

    def _gradients(self, x: torch.Tensor, y: torch.Tensor
                   ) -> tuple[torch.Tensor, dict[torch.Tensor, torch.Tensor]]:
        """mean((model(x) - y)^2) and its gradient by parameter, by the chain rule through the layers."""
        h = (x - self.model.input_mean) / self.model.input_std
        inputs = []  # what each Linear saw: the standardised x, then the ReLU outputs
        last = len(self.linears) - 1
        for i, layer in enumerate(self.linears):
            inputs.append(h)
            h = torch.addmm(layer.bias, h, layer.weight.t())
            if i < last:
                h = h.clamp_min_(0)
        residual = (h - y).view(-1)
        loss = residual.dot(residual) / residual.numel()
        grad = residual.mul_(2.0 / h.numel()).view_as(h)  # d loss / d output
        grads: dict[torch.Tensor, torch.Tensor] = {}
        for i in range(last, -1, -1):
            layer = self.linears[i]
            grads[layer.weight] = grad.t().mm(inputs[i])
            grads[layer.bias] = grad.sum(0)
            if i > 0:  # through the weights, then through the ReLU that produced inputs[i]
                grad = grad.mm(layer.weight).mul_(inputs[i] > 0)
        return loss, grads

    def _sgd(self, grads: dict[torch.Tensor, torch.Tensor]) -> None:
        """torch.optim.SGD's rule (weight decay, momentum, dampening, Nesterov) as its multi-tensor
        implementation writes it, on the optimiser's own momentum buffers. (Calling
        ``optimizer.step()`` with the gradients in ``.grad`` would cost about 0.3 ms per update.)"""
        for group in self.optimizer.param_groups:
            params = group["params"]
            lr, decay = group["lr"], group["weight_decay"]
            momentum, dampening = group["momentum"], group["dampening"]
            step = [grads[p] for p in params]
            if decay:
                step = torch._foreach_add(step, params, alpha=decay)
            if momentum:
                states = [self.optimizer.state[p] for p in params]
                bufs = [state.get("momentum_buffer") for state in states]
                if any(buf is None for buf in bufs):  # the first update: the buffer is the gradient
                    bufs = [state.setdefault("momentum_buffer", g.clone())
                            for state, g in zip(states, step)]
                else:
                    torch._foreach_mul_(bufs, momentum)
                    torch._foreach_add_(bufs, step, alpha=1 - dampening)
                if group["nesterov"]:
                    step = torch._foreach_add(step, bufs, alpha=momentum)
                else:
                    step = bufs
            torch._foreach_add_(params, step, alpha=-lr)
