"""The one training loop for every supervised torch experiment.

A task supplies the model, a loader, ``step_loss(model, batch) -> scalar loss`` (or
``(loss, {name: scalar tensor})`` to log extra terms, e.g. a VAE's reconstruction and KL, averaged
over each log window like the loss and written into the same train record) and
``evaluate(model) -> {split: {metric: value}}``; the loop owns the rest: the update budget, AMP,
gradient clipping, periodic evaluation and logging, atomic checkpoints, exact resume, and the
non-finite-loss guard.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from omegaconf import DictConfig
from torch import nn
from tqdm import tqdm

from dlfp.engine.checkpoint import (
    check_resumable,
    load_checkpoint,
    raise_non_finite,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from dlfp.errors import DlfpError
from dlfp.run import Run

log = logging.getLogger(__name__)

StepOutput = torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]
StepLoss = Callable[[nn.Module, Any], StepOutput]
_RECORD_KEYS = frozenset({"step", "epoch", "split", "loss", "lr"})
Evaluate = Callable[[nn.Module], dict[str, dict[str, float]]]


class BatchSource(Protocol):
    def __len__(self) -> int: ...
    def epoch(self, epoch: int, start: int = 0) -> Iterator[Any]: ...


@dataclass
class FitResult:
    steps: int
    evaluation: dict[str, dict[str, float]]  # the last evaluation, at the final step
    train_seconds: float  # wall time of the updates in this process (excludes a resumed part)


def total_steps(cfg: DictConfig, steps_per_epoch: int) -> int:
    """The update budget from exactly one of ``train.steps`` and ``train.epochs``."""
    if (cfg.steps is None) == (cfg.epochs is None):
        raise DlfpError(
            f"set exactly one of train.steps and train.epochs (got steps={cfg.steps}, "
            f"epochs={cfg.epochs}); e.g. train.steps=1000 train.epochs=null"
        )
    steps = int(cfg.steps) if cfg.steps is not None else int(cfg.epochs) * steps_per_epoch
    if steps < 1:
        raise DlfpError(f"the update budget must be positive, got {steps}")
    return steps


def batch_stream(loader: BatchSource, start_step: int) -> Iterator[Any]:
    """Batches from update ``start_step`` on, across epochs: resuming at any step sees the same data."""
    epoch, index = divmod(start_step, len(loader))
    while True:
        yield from loader.epoch(epoch, start=index)
        epoch, index = epoch + 1, 0


def fit(
    model: nn.Module,
    loader: BatchSource,
    step_loss: StepLoss,
    evaluate: Evaluate,
    *,
    run: Run,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    steps: int,
    train_cfg: DictConfig,
    resume: bool = False,
) -> FitResult:
    hw = run.hw
    ckpt_path = run.checkpoint_dir / "last.pt"
    scaler = torch.amp.GradScaler(hw.device.type, enabled=hw.amp_dtype == torch.float16)
    start = 0
    check_resumable(ckpt_path, run.dir, resume)
    if resume:
        state = load_checkpoint(ckpt_path, hw.device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        start = int(state["step"])
        run.metrics.truncate_after(start)
        log.info("resumed from %s at step %d/%d", ckpt_path, start, steps)

    net = torch.compile(model) if hw.compile else model
    per_epoch = len(loader)
    autocast = lambda: torch.autocast(  # noqa: E731
        hw.device.type, dtype=hw.amp_dtype or torch.float32, enabled=hw.amp_dtype is not None
    )

    def run_eval(step: int) -> dict[str, dict[str, float]]:
        net.eval()
        with torch.no_grad(), autocast():
            results = evaluate(net)
        net.train()
        for split, metrics in results.items():
            run.metrics.log(step, split, epoch=round(step / per_epoch, 4), **metrics)
            shown = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            log.info("step %d/%d %s %s", step, steps, split, shown)
        return results

    window = _LossWindow()

    def save(step: int) -> None:
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            raise_non_finite(step, ckpt_path, "parameters")
        save_checkpoint(
            ckpt_path,
            {
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": rng_state(),
                "window": window.state_dict(),
            },
        )

    if resume:
        window.load_state_dict(state["window"])
    results = run_eval(0) if start == 0 else {}
    net.train()
    batches = batch_stream(loader, start)
    print_every = max(1, steps // 100)  # the text log keeps ~100 train lines even with log_every=1
    printed_at = start
    on_terminal = sys.stderr.isatty()
    bar = tqdm(total=steps, initial=start, disable=not on_terminal, unit="step", dynamic_ncols=True)
    began = time.perf_counter()
    for step in range(start + 1, steps + 1):
        batch = next(batches)
        with autocast():
            out = step_loss(net, batch)
        loss, extras = out if isinstance(out, tuple) else (out, {})
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if train_cfg.grad_clip is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), float(train_cfg.grad_clip))
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        window.add(loss, extras)
        bar.update(1)

        last = step == steps
        log_due = last or step % train_cfg.log_every == 0
        eval_due = last or step % train_cfg.eval_every == 0
        ckpt_due = last or step % train_cfg.checkpoint_every == 0
        if log_due or eval_due or ckpt_due:
            means = window.means()  # one device sync for the loss and every extra term
            if not math.isfinite(means["loss"]):
                raise_non_finite(step, ckpt_path, "loss")
        if log_due:
            lr = optimizer.param_groups[0]["lr"]
            run.metrics.log(step, "train", epoch=round(step / per_epoch, 4), **means, lr=lr)
            bar.set_postfix(loss=f"{means['loss']:.4f}", refresh=False)
            if not on_terminal and (last or step - printed_at >= print_every):
                log.info("step %d/%d train loss %.4f lr %.4g", step, steps, means["loss"], lr)
                printed_at = step
            window.reset()
        if eval_due:
            results = run_eval(step)
        if ckpt_due:
            save(step)
    bar.close()
    seconds = time.perf_counter() - began
    if not results:  # resumed a run that had already finished
        results = run_eval(steps)
    return FitResult(steps=steps, evaluation=results, train_seconds=seconds)


class _LossWindow:
    """Sums of the loss and any extra terms since the last train record, kept on the device.

    It is part of the checkpoint, so a run resumed mid-window logs the same means as one never
    interrupted.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self.sums: torch.Tensor | None = None
        self.count = 0

    def add(self, loss: torch.Tensor, extras: dict[str, torch.Tensor]) -> None:
        if self.sums is None:
            clash = _RECORD_KEYS & set(extras)
            if clash:
                raise ValueError(f"step_loss extra terms {sorted(clash)} clash with the train record's keys")
            self.names = ["loss", *extras]
        terms = torch.stack([loss.detach().float(), *(extras[k].detach().float() for k in self.names[1:])])
        self.sums = terms if self.sums is None else self.sums + terms
        self.count += 1

    def means(self) -> dict[str, float]:
        return dict(zip(self.names, (self.sums / self.count).tolist()))

    def reset(self) -> None:
        self.sums, self.count = None, 0

    def state_dict(self) -> dict[str, Any]:
        return {"names": self.names, "sums": self.sums, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.names, self.sums, self.count = list(state["names"]), state["sums"], int(state["count"])
