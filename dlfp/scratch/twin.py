"""The NumPy network's PyTorch twin, and the proof that the two compute the same thing.

``torch_twin(net)`` builds ``PatchMLP`` with the NumPy network's architecture, dtype and weights
(parameter names match, so weights copy by name both ways). ``check_equivalence`` then compares, in
float64: the logits, the loss and every parameter gradient of one batch, and the losses of a run of
SGD steps on the same batches. Differences are *relative to scale*: max |a - b| over an array
divided by max |b| (torch's values are the reference), because entry-wise ratios blow up on entries
that are zero in exact arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from dlfp.models.patch_mlp import PatchMLP
from dlfp.scratch.loss import SoftmaxCrossEntropy
from dlfp.scratch.network import Network, build_patch_mlp
from dlfp.scratch.sgd import SGD

STEP_TOLERANCE = 1e-10  # logits, loss and gradients of one batch
TRAINING_TOLERANCE = 1e-8  # the loss of every SGD step

Batch = tuple[np.ndarray, np.ndarray]  # images (N, C, H, W), integer labels (N,)


def torch_twin(net: Network) -> PatchMLP:
    """A ``PatchMLP`` with the same architecture, dtype and weights as ``net``."""
    model = PatchMLP(**net.arch).to(getattr(torch, net.dtype.name))
    copy_to_torch(net, model)
    return model


def copy_to_torch(net: Network, model: torch.nn.Module) -> None:
    model.load_state_dict({k: torch.from_numpy(v) for k, v in net.state_dict().items()})


def copy_from_torch(model: torch.nn.Module, net: Network) -> None:
    net.load_state_dict({k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})


def rel_diff(ours: np.ndarray | float, reference: np.ndarray | float, tiny: float = 1e-300) -> float:
    """max |ours - reference| / max |reference|."""
    ours, reference = np.asarray(ours, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    return float(np.abs(ours - reference).max() / max(np.abs(reference).max(), tiny))


@dataclass
class Equivalence:
    """Relative differences NumPy vs PyTorch; ``passed`` applies the tolerances above."""

    logits: float
    loss: float
    grads: dict[str, float]
    training_losses: float = 0.0  # the worst step of the SGD run
    training_params: float = 0.0  # the worst parameter after the SGD run (reported, not judged)
    steps: int = 0
    losses: list[float] = field(default_factory=list)  # the NumPy run's losses, step by step

    @property
    def passed(self) -> bool:
        one_batch = max(self.logits, self.loss, *self.grads.values())
        return one_batch < STEP_TOLERANCE and self.training_losses < TRAINING_TOLERANCE

    def lines(self) -> list[str]:
        """A readable table: quantity, relative difference, tolerance, verdict."""
        rows = [("logits", self.logits, STEP_TOLERANCE), ("loss", self.loss, STEP_TOLERANCE)]
        rows += [(f"grad {name}", value, STEP_TOLERANCE) for name, value in self.grads.items()]
        if self.steps:
            rows.append((f"loss, each of {self.steps} SGD steps", self.training_losses, TRAINING_TOLERANCE))
            rows.append(("parameters after them", self.training_params, None))
        width = max(len(r[0]) for r in rows)
        out = [f"{'quantity':<{width}}  rel diff  tolerance  verdict"]
        for name, value, tol in rows:
            judged = f"{tol:<9g}  {'ok' if value < tol else 'FAIL'}" if tol else "-          (reported)"
            out.append(f"{name:<{width}}  {value:.2e}  {judged}")
        return out


def compare_batch(net: Network, model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> Equivalence:
    """Logits, loss and every gradient of one batch, from the current weights of both."""
    loss_fn = SoftmaxCrossEntropy()
    logits = net.forward(x).copy()
    loss = loss_fn.forward(logits, y)
    net.backward(loss_fn.backward())
    model.zero_grad(set_to_none=True)
    t_logits = model(torch.from_numpy(np.asarray(x, dtype=net.dtype)))
    t_loss = F.cross_entropy(t_logits, torch.from_numpy(y))
    t_loss.backward()
    t_grads = {name: p.grad.numpy() for name, p in model.named_parameters()}
    return Equivalence(
        logits=rel_diff(logits, t_logits.detach().numpy()),
        loss=rel_diff(loss, t_loss.item()),
        grads={name: rel_diff(grad, t_grads[name]) for name, _, grad in net.parameters()},
    )


def compare_training(net: Network, model: torch.nn.Module, batches: Iterable[Batch],
                     lr: float) -> tuple[float, float, list[float]]:
    """Plain SGD on both over the same batches: (worst loss difference, parameter difference, losses)."""
    loss_fn, sgd = SoftmaxCrossEntropy(), SGD(net.parameters(), lr)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    worst, losses = 0.0, []
    for x, y in batches:
        loss = loss_fn.forward(net.forward(x), y)
        net.backward(loss_fn.backward())
        sgd.step()
        t_loss = F.cross_entropy(model(torch.from_numpy(np.asarray(x, dtype=net.dtype))), torch.from_numpy(y))
        optimizer.zero_grad(set_to_none=True)
        t_loss.backward()
        optimizer.step()
        worst = max(worst, rel_diff(loss, t_loss.item()))
        losses.append(loss)
    t_params = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    params = max(rel_diff(value, t_params[name]) for name, value, _ in net.parameters())
    return worst, params, losses


def check_equivalence(batches: list[Batch], *, lr: float = 0.1, seed: int = 0,
                      arch: dict | None = None) -> Equivalence:
    """Float64 NumPy network (seeded init) vs its torch twin: batch 0 compared in detail, then SGD on all."""
    net = build_patch_mlp(**(arch or {}), rng=np.random.default_rng(seed), dtype=np.float64)
    model = torch_twin(net)
    report = compare_batch(net, model, *batches[0])
    report.training_losses, report.training_params, report.losses = compare_training(net, model, batches, lr)
    report.steps = len(batches)
    return report
