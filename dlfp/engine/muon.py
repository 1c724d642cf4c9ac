"""Muon for matrices and convolution filters: torch's ``torch.optim.Muon``, whose step takes 2-D
parameters only, with a filter (out, in, k, k) stepped as the out × in·k·k matrix it is in the
convolution (as airbench94_muon and the Muon reference do), and airbench94_muon's weight
renormalisation as an option. The Newton–Schulz iteration and the update are torch's own."""

from __future__ import annotations

import math
from collections.abc import Iterable, MutableMapping
from typing import Any

import torch
from torch import Tensor

from dlfp.errors import DlfpError


class Muon(torch.optim.Muon):
    """``torch.optim.Muon`` over matrices and filters. ``renormalize``: before each step a weight
    is rescaled to Frobenius norm sqrt(out) (airbench94_muon's stand-in for weight decay)."""

    def __init__(self, params: Iterable[Any], renormalize: bool = False, **options: Any) -> None:
        probe = torch.optim.Muon([torch.zeros(1, 1, requires_grad=True)], **options)  # torch's checks
        torch.optim.Optimizer.__init__(self, params, {**probe.defaults, "renormalize": renormalize})
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim < 2:
                    raise DlfpError(f"Muon steps matrices and filters, not a parameter of shape "
                                    f"{tuple(p.shape)}; route vectors (biases, norm parameters) to another "
                                    "optimizer (optimizer.routes, docs/design.md 'Optimizers')")

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            if group["renormalize"]:
                for p in group["params"]:
                    if p.grad is not None:
                        p.mul_(math.sqrt(p.shape[0]) / p.norm())
        return super().step(closure)

    def _init_group(self, group: MutableMapping, params_with_grad: list[Tensor], grads: list[Tensor],
                    muon_momentum_bufs: list[Tensor]) -> bool:
        """torch's, with every parameter and gradient seen as a matrix (a view: the step writes
        through it) and the momentum kept in that shape."""
        for p in group["params"]:
            if p.grad is None:
                continue
            if torch.is_complex(p) or p.grad.is_sparse:
                raise RuntimeError("Muon supports neither complex parameters nor sparse gradients")
            params_with_grad.append(as_matrix(p))
            grads.append(as_matrix(p.grad, like=p))
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(grads[-1])
            muon_momentum_bufs.append(state["momentum_buffer"])
        return False


def as_matrix(t: Tensor, like: Tensor | None = None) -> Tensor:
    """``t`` as an out × rest matrix, its trailing dims in ``like``'s memory order (a channels-last
    filter is (out, k, k, in) in memory). A view where ``t`` is laid out as ``like``, else a copy
    (only gradients, which the step reads, may be copied). The order of the columns does not matter
    to Muon: orthogonalising G·P gives orth(G)·P for a permutation P."""
    like = t if like is None else like
    if t.ndim == 2:
        return t
    order = sorted(range(1, like.ndim), key=lambda d: -like.stride(d))
    permuted = t.permute(0, *order)
    if permuted.is_contiguous():
        return permuted.view(t.shape[0], -1)
    if like is t:
        raise DlfpError(f"Muon cannot view a parameter of shape {tuple(t.shape)} and strides {t.stride()} "
                        "as a matrix in place")
    return permuted.reshape(t.shape[0], -1)
