"""Updates: one optimisation step on one batch, the part of training the driver leaves to a task.

The driver (``dlfp.engine.driver.fit``) only needs the ``Update`` protocol below. ``TorchUpdate``
is the autograd update of every torch experiment (AMP, gradient clipping, gradient accumulation,
DDP) on the model's own training loss, ``model.loss(batch)``; it also runs a hand-written step in
place of autograd where a task supplies one (the regression MLP). The NumPy network's update lives
beside it in ``dlfp.scratch.update``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import torch
from omegaconf import DictConfig
from torch import nn

from dlfp.engine.hardware import Hardware
from dlfp.errors import DlfpError

Batch = dict[str, Any]
Loss = torch.Tensor | float
StepOutput = Loss | tuple[Loss, dict[str, Loss]]  # what ``model.loss(batch)`` returns


class Update(Protocol):
    checkpoint_suffix: str  # ".pt" or ".npz"
    model: Any  # what ``evaluate`` receives

    def __call__(self, batch: Batch) -> tuple[Loss, dict[str, Loss]]: ...
    def set_lr(self, factor: float) -> None: ...  # lr = configured lr x factor
    @property
    def lr(self) -> float: ...
    def evaluation(self, model: Any = None) -> contextlib.AbstractContextManager: ...  # yields the model
    def finite(self) -> bool: ...
    def model_config(self) -> dict | None: ...  # constructor arguments that rebuild the model
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def split_output(out: StepOutput) -> tuple[Loss, dict[str, Loss]]:
    """``loss`` or ``(loss, {name: term})`` -> ``(loss, terms)``."""
    return out if isinstance(out, tuple) else (out, {})


class TorchUpdate:
    """Autograd on ``model.loss(batch)`` (the loss, or ``(loss, {name: term})``), then the
    optimiser. The model stays unwrapped for checkpoints; ``LossOf(model)``, compiled when
    ``hardware.compile``, runs the batches, and ``net`` (compiled too) the evaluations.

    ``optimizer`` is one torch optimiser or a list of them (``build_optimizer`` routes parameters
    to several): each is stepped (through the AMP scaler: unscaled and checked for infs on its own),
    the gradients are clipped once over all parameters, ``set_lr`` scales every group of every
    optimiser from its own peak lr, and the checkpoint holds every optimiser's state. ``lr`` is the
    first optimiser's first group's.

    ``train.accumulate = k`` splits each batch into k equal micro-batches whose gradients add up
    to the whole batch's: the same update with a k times smaller activation memory. ``manual_step``
    replaces autograd + ``optimizer.step`` with a hand-written update that applies the (one)
    optimiser's rule itself and returns the batch loss.

    Under torchrun the loss runs inside ``DistributedDataParallel`` (around ``LossOf``: its
    forward is the whole loss, so models whose loss calls other methods than ``forward``, like
    the VAE's ``encode``/``decode``, synchronise their gradients too). Evaluation uses the plain model.
    """

    checkpoint_suffix = ".pt"

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | Sequence[torch.optim.Optimizer],
                 hw: Hardware, train_cfg: DictConfig,
                 manual_step: Callable[[Batch], torch.Tensor] | None = None) -> None:
        if not callable(getattr(model, "loss", None)):
            raise DlfpError(f"model {type(model).__name__} has no loss(batch) method; every trained "
                            "model states its own training loss (docs/design.md, 'Contracts')")
        self.model, self.hw = model, hw
        self.optimizers = [optimizer] if isinstance(optimizer, torch.optim.Optimizer) else list(optimizer)
        self.net = torch.compile(model) if hw.compile else model
        self.grad_clip = train_cfg.get("grad_clip")
        self.accumulate = int(train_cfg.get("accumulate", 1))
        if self.accumulate < 1:
            raise DlfpError(f"train.accumulate={self.accumulate} must be at least 1")
        if manual_step is not None and (self.grad_clip is not None or self.accumulate > 1
                                        or hw.amp_dtype is not None):
            raise DlfpError("this task's hand-written update supports no train.grad_clip, "
                            "train.accumulate or AMP; turn its fast path off to use them")
        if manual_step is not None and len(self.optimizers) > 1:
            raise DlfpError("this task's hand-written update steps one optimizer; remove the optimizer "
                            "entries of optimizer.routes, or turn the task's fast path off")
        if manual_step is not None and hw.ranks.active:
            raise DlfpError("this task's hand-written update cannot run data-parallel; run it as one "
                            "process (without torchrun)")
        self.manual_step = manual_step
        self.ddp = _data_parallel(model, hw) if hw.ranks.active else None
        loss_of = self.ddp if self.ddp is not None else LossOf(model)
        self.loss_of = torch.compile(loss_of) if hw.compile else loss_of
        self.scaler = torch.amp.GradScaler(hw.device.type, enabled=hw.amp_dtype == torch.float16)
        self.peak_lrs = [group["lr"] for group in self.groups()]
        model.train()

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.hw.device.type, dtype=self.hw.amp_dtype or torch.float32,
                              enabled=self.hw.amp_dtype is not None)

    def __call__(self, batch: Batch) -> tuple[Loss, dict[str, Loss]]:
        if self.manual_step is not None:
            return self.manual_step(batch), {}
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
        if self.accumulate == 1:
            loss, terms = self._backward(batch, 1.0)
        else:
            loss, terms = self._accumulated(batch)
        if self.grad_clip is not None:
            for optimizer in self.optimizers:
                self.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), float(self.grad_clip))
        for optimizer in self.optimizers:
            self.scaler.step(optimizer)
        self.scaler.update()
        return loss, terms

    def _backward(self, batch: Batch, weight: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with self.autocast():
            out = self.loss_of(batch)
            loss, terms = split_output(out)
        self.scaler.scale(loss * weight if weight != 1.0 else loss).backward()
        return loss.detach(), {k: v.detach() for k, v in terms.items()}

    def _accumulated(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Micro-batches weighted by their share of the batch: the sums are the batch means."""
        sizes = {len(v) for v in batch.values()}
        size = sizes.pop()
        if sizes or size % self.accumulate:
            raise DlfpError(f"train.accumulate={self.accumulate} must divide the batch of {size}")
        chunks = [dict(zip(batch, parts)) for parts in
                  zip(*(v.chunk(self.accumulate) for v in batch.values()))]
        total, totals = None, {}
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1  # data-parallel: gradients are averaged over ranks once
            with self.ddp.no_sync() if self.ddp is not None and not last else contextlib.nullcontext():
                loss, terms = self._backward(chunk, 1.0 / self.accumulate)
            total = loss / self.accumulate if total is None else total + loss / self.accumulate
            for k, v in terms.items():
                totals[k] = totals.get(k, 0) + v / self.accumulate
        return total, totals

    def groups(self) -> list[dict[str, Any]]:
        """Every optimiser's param groups, read afresh (``load_state_dict`` replaces them)."""
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    def set_lr(self, factor: float) -> None:
        for group, peak in zip(self.groups(), self.peak_lrs):
            group["lr"] = peak * factor

    @property
    def lr(self) -> float:
        return self.groups()[0]["lr"]

    @contextlib.contextmanager
    def evaluation(self, model: nn.Module | None = None) -> Iterator[nn.Module]:
        """``no_grad``, eval mode and autocast around an evaluation; train mode afterwards."""
        model = self.net if model is None else model
        model.eval()
        try:
            with torch.no_grad(), self.autocast():
                yield model
        finally:
            model.train()

    def finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    def model_config(self) -> dict | None:
        return getattr(self.model, "init_config", None)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizers": [opt.state_dict() for opt in self.optimizers],
                "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state["optimizers"] if "optimizers" in state else [state["optimizer"]]  # (one, before routes)
        if len(saved) != len(self.optimizers):
            raise DlfpError(f"the checkpoint holds the state of {len(saved)} optimizer(s), this run builds "
                            f"{len(self.optimizers)}; resume with the optimizer.routes it was started with")
        self.model.load_state_dict(state["model"])
        for optimizer, optimizer_state in zip(self.optimizers, saved):
            optimizer.load_state_dict(optimizer_state)
        self.scaler.load_state_dict(state["scaler"])


class LossOf(nn.Module):
    """A module whose forward is ``model.loss(batch)``: what ``torch.compile`` and
    ``DistributedDataParallel`` wrap, so the whole loss is compiled and synchronised."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> StepOutput:
        return self.model.loss(batch)


def _data_parallel(model: nn.Module, hw: Hardware) -> nn.parallel.DistributedDataParallel:
    """The loss under DDP: rank 0's weights copied to every rank, gradients averaged over them."""
    if hw.sync_batchnorm:  # in place: the same parameters, so the optimiser's references stay valid
        for name, child in list(model.named_children()):
            setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    device_ids = [hw.device] if hw.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(LossOf(model), device_ids=device_ids)
