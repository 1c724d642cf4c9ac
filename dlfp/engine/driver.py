"""The one training driver: every trained experiment runs its updates through ``fit``.

A task hands it an ``Update`` (one optimisation step on a batch: torch autograd, the NumPy
network's, or a hand-written one), a batch source and an ``evaluate`` function. The driver owns
the rest: the budget (``train.steps`` or ``train.epochs``), the cadence of logging, evaluation and
checkpoints (``train.cadence``: in updates or epochs), the lr schedule, the loss window, stopping
at a training-loss tolerance (``train.stop_loss``), an EMA of the weights (``train.ema_decay``)
or a lookahead average that feeds back into them (``train.lookahead_decay``),
atomic checkpoints with exact resume, the non-finite guard and the progress bar. It evaluates
every ``train.eval_every``, after the last update, and at step 0 with ``train.eval_at_start``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from omegaconf import DictConfig

from dlfp.config.plain import dotted, plain_config
from dlfp.engine import distributed
from dlfp.engine.checkpoint import (
    check_resumable,
    load_for_resume,
    raise_non_finite,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from dlfp.engine.ema import EMA, Lookahead
from dlfp.engine.progress import Progress
from dlfp.engine.run import Run
from dlfp.engine.schedules import lr_factor
from dlfp.engine.updates import Update
from dlfp.engine.window import LossWindow
from dlfp.errors import DlfpError

log = logging.getLogger(__name__)

Results = dict[str, dict[str, float]]  # {split: {metric: value}}
Evaluate = Callable[[Any], Results]
CHECKPOINT_FORMAT = 1
# Settings a resumed run may change: where files go, the budget (to extend a finished run), the
# cadence of records, the evaluation batch and threads. Any other difference would mix two runs.
RESUMABLE_CHANGES = ("paths.", "tracking.", "train.steps", "train.epochs", "train.eval_every",
                     "train.eval_at_start", "train.log_every", "train.checkpoint_every",
                     "train.eval_batch_size", "hardware.threads")
NOT_SETTINGS = ("resume",)  # says how this process starts, not how the run trains: never compared


class BatchSource(Protocol):
    def __len__(self) -> int: ...
    def epoch(self, epoch: int, start: int = 0) -> Iterator[Any]: ...


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class FitResult:
    steps: int  # updates run in all (fewer than the budget when train.stop_loss stopped it)
    evaluation: Results  # the last evaluation, at the final step and the weights fit returns with
    train_seconds: float  # wall time of training (updates, records, evaluations), resumed parts included
    ema_model: Any = None  # the averaged weights' model, with train.ema_decay


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


def batch_stream(batches: BatchSource, start_step: int,
                 on_epoch_start: Callable[[int], None] | None = None) -> Iterator[Any]:
    """Batches from update ``start_step`` on, across epochs: resuming at any step sees the same data.
    ``on_epoch_start(epoch)`` runs before an epoch's first batch (a resumed epoch's included)."""
    epoch, index = divmod(start_step, len(batches))
    while True:
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        yield from batches.epoch(epoch, start=index)
        epoch, index = epoch + 1, 0


def fit(
    update: Update,
    batches: BatchSource,
    evaluate: Evaluate | None,
    *,
    run: Run,
    train_cfg: DictConfig,
    schedule: DictConfig | None = None,
    resume: bool = False,
    measure_train: Callable[[], dict[str, float]] | None = None,
    on_epoch_start: Callable[[int], None] | None = None,
    task_state: dict[str, Stateful] | None = None,
) -> FitResult:
    """Train until the budget is spent or the logged training loss reaches ``train.stop_loss``.

    ``measure_train()``, when given, supplies the train record (e.g. the loss over the whole
    training set) in place of the mean batch loss since the last record, and is logged at step 0.
    ``on_epoch_start(epoch)`` runs before each epoch's first update (a resumed epoch's too);
    ``task_state`` objects are saved in and restored from the checkpoint. The last evaluation is
    at the weights the model ends with (after the lookahead's last pull), so a task may reuse it.
    """
    per_epoch = len(batches)
    steps = total_steps(train_cfg, per_epoch)
    factor = lr_factor(schedule, steps, per_epoch) if schedule is not None else (lambda step: 1.0)
    every = _cadence(train_cfg, per_epoch)
    session = _Session(update, evaluate, run, train_cfg, per_epoch, steps, measure_train, task_state)
    start = session.resume() if resume else session.start()
    update.set_lr(factor(start))
    session.began = time.perf_counter()
    results = session.first_records() if start == 0 else {}
    stream = batch_stream(batches, start, on_epoch_start)
    progress = Progress(steps, start, quiet=not run.hw.ranks.is_main)
    step = start
    while step < steps and not session.stopped:
        loss, terms = update(next(stream))
        step += 1
        update.set_lr(factor(step))
        session.after_update(step, loss, terms)
        progress.advance()
        log_due, eval_due, ckpt_due = (step % every[key] == 0 for key in ("log", "eval", "checkpoint"))
        if log_due or eval_due or ckpt_due or step == steps:
            session.check_train(step, record=log_due or step == steps, progress=progress)
        last = session.stopped or step == steps
        if last and session.lookahead is not None:
            session.lookahead.finish(step)
        if eval_due or last:
            results = session.evaluate(step)
        if ckpt_due or last:
            session.save(step)
    progress.close()
    seconds = session.seconds()
    if step == start:  # resumed a run that had already finished: its records are all there
        results = session.evaluate(step, record=False)
    run.timings["train_seconds"] = round(seconds, 3)
    return FitResult(steps=step, evaluation=results, train_seconds=seconds,
                     ema_model=session.ema.model if session.ema is not None else None)


class _Session:
    """The state one call of ``fit`` shares between its steps: the loss window, the EMA, the
    task's checkpointed objects, and whether ``train.stop_loss`` has stopped the run."""

    def __init__(self, update: Update, evaluate: Evaluate | None, run: Run, train_cfg: DictConfig,
                 per_epoch: int, steps: int, measure_train: Callable[[], dict[str, float]] | None,
                 task_state: dict[str, Stateful] | None) -> None:
        self.update, self.evaluate_fn, self.run, self.measure_train = update, evaluate, run, measure_train
        self.per_epoch, self.steps, self.stop_loss = per_epoch, steps, train_cfg.get("stop_loss")
        self.ckpt_path = run.checkpoint_dir / f"last{update.checkpoint_suffix}"
        self.ema = _ema(update, train_cfg.get("ema_decay"), bool(train_cfg.get("ema_warmup", False)))
        self.lookahead = _lookahead(update, train_cfg, steps)
        self.stateful = {**(task_state or {}), **({"ema": self.ema} if self.ema else {}),
                         **({"lookahead": self.lookahead} if self.lookahead else {})}
        self.window, self.stopped = LossWindow(), False
        self.record_seconds, self.began = bool(train_cfg.get("record_seconds", False)), time.perf_counter()
        self.eval_at_start = bool(train_cfg.get("eval_at_start", True))
        self.seconds_before = 0.0  # the training seconds of the parts of the run before a resume
        self.ranks = run.hw.ranks
        self.config = json.dumps(plain_config(run.cfg))
        model_config = update.model_config()
        self.saved = {"format": CHECKPOINT_FORMAT, "config": self.config,
                      "model_config": json.dumps(model_config) if model_config else None}

    def start(self) -> int:
        self.run.dir.mkdir(parents=True, exist_ok=True)
        check_resumable(self.ckpt_path, self.run.dir, resume=False)
        self.run.metrics.clear()  # records a killed run left before its first checkpoint
        return 0

    def resume(self) -> int:
        check_resumable(self.ckpt_path, self.run.dir, resume=True)
        state = load_for_resume(self.ckpt_path, self.run.hw.device)
        _check_changes(json.loads(state["config"]), json.loads(self.config), self.run)
        own = _own_state(state, self.ranks, self.ckpt_path)
        self.update.load_state_dict(state["update"])
        self.window.load_state_dict(own["window"])
        set_rng_state(own["rng"])
        for name, obj in self.stateful.items():
            obj.load_state_dict(state["task"][name])
        # a run that spent its budget may be extended by resuming it with a larger one
        start, self.stopped = int(state["step"]), bool(state["stopped"])
        self.seconds_before = float(state.get("train_seconds", 0.0))
        self.run.metrics.truncate_after(start)
        log.info("resumed from %s at step %d/%d", self.ckpt_path, start, self.steps)
        return start

    def seconds(self) -> float:
        """Training seconds so far: this process's, and those of the parts of the run it resumed."""
        return self.seconds_before + time.perf_counter() - self.began

    def first_records(self) -> Results:
        """Step 0: the measured train record (when the task measures one) and, with
        ``train.eval_at_start``, an evaluation."""
        if self.measure_train is not None:
            self.stopped = self._record_train(0, self.measure_train())
        return self.evaluate(0) if self.eval_at_start else {}

    def after_update(self, step: int, loss: Any, terms: dict[str, Any]) -> None:
        if self.measure_train is None:  # otherwise the train record is measured, not averaged
            self.window.add(loss, terms)
        if self.lookahead is not None:
            self.lookahead.update(step)
        if self.ema is not None:
            self.ema.update()

    def check_train(self, step: int, record: bool, progress: Progress) -> None:
        """The non-finite guard on the train loss, and the train record when one is due."""
        values = self.measure_train() if self.measure_train is not None else self.window.means()
        values = distributed.mean_over_ranks(values)  # the global batch's, the same on every rank
        if not record:
            if not math.isfinite(values["loss"]):
                raise_non_finite(step, self.ckpt_path, "loss")
            return
        self.stopped = self._record_train(step, values)
        progress.show(step, **{"train loss": values["loss"], "lr": self.update.lr})
        self.window.reset()

    def _record_train(self, step: int, values: dict[str, float]) -> bool:
        """Log the train record; True when it reaches the stop_loss tolerance."""
        if not math.isfinite(values["loss"]):
            raise_non_finite(step, self.ckpt_path, "loss")
        epoch = round(step / self.per_epoch, 4)
        self.run.metrics.log(step, "train", epoch=epoch, **values, lr=self.update.lr)
        return self.stop_loss is not None and values["loss"] <= self.stop_loss

    def evaluate(self, step: int, record: bool = True) -> Results:
        """Rank 0 evaluates its model, the one checkpointed (as nanoGPT does); every rank gets the
        results, so every rank takes the same decisions."""
        results: Results = {}
        if self.evaluate_fn is not None and self.ranks.is_main:
            with self.update.evaluation() as model:
                results = dict(self.evaluate_fn(model))
            if self.ema is not None:
                with self.update.evaluation(self.ema.model) as model:
                    results.update({f"{split}_ema": m for split, m in self.evaluate_fn(model).items()})
        results = distributed.broadcast(results)
        seconds = {"seconds": round(self.seconds(), 3)} if self.record_seconds else {}
        for split, metrics in results.items() if record else ():
            self.run.metrics.log(step, split, epoch=round(step / self.per_epoch, 4), **metrics, **seconds)
            shown = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            log.info("step %d/%d %s %s", step, self.steps, split, shown)
        return results

    def save(self, step: int) -> None:
        if not self.update.finite():
            raise_non_finite(step, self.ckpt_path, "parameters")
        own = distributed.gather({"window": self.window.state_dict(), "rng": rng_state()})
        if not self.ranks.is_main:
            return
        state = {**self.saved, "step": step, "stopped": self.stopped, "train_seconds": self.seconds(),
                 "update": self.update.state_dict(),
                 **own[0], "task": {name: obj.state_dict() for name, obj in self.stateful.items()}}
        if self.ranks.active:  # each rank's own loss window and random-number state, for exact resume
            state["ranks"] = {str(rank): part for rank, part in enumerate(own)}
        save_checkpoint(self.ckpt_path, {k: v for k, v in state.items() if v is not None})


def _cadence(train_cfg: DictConfig, per_epoch: int) -> dict[str, int]:
    """Updates between train records, evaluations and checkpoints (``train.cadence``: updates|epochs)."""
    unit = str(train_cfg.get("cadence", "updates"))
    scale = per_epoch if unit == "epochs" else 1
    every = {}
    for key in ("log", "eval", "checkpoint"):
        value = int(train_cfg[f"{key}_every"])
        if value < 1:
            raise DlfpError(f"train.{key}_every={value} must be at least 1")
        every[key] = value * scale
    return every


def _ema(update: Update, decay: float | None, warmup: bool) -> EMA | None:
    return None if decay is None else EMA(_torch_model(update, "ema_decay"), decay, warmup)


def _lookahead(update: Update, train_cfg: DictConfig, steps: int) -> Lookahead | None:
    decay = train_cfg.get("lookahead_decay")
    if decay is None:
        return None
    every = int(train_cfg.get("lookahead_every", 5))
    return Lookahead(_torch_model(update, "lookahead_decay"), decay, every, steps)


def _torch_model(update: Update, option: str) -> torch.nn.Module:
    """The update's model, for an option that averages torch weights."""
    if not isinstance(update.model, torch.nn.Module):
        raise DlfpError(f"train.{option} needs a torch model; this experiment's update has none")
    return update.model


def _own_state(state: dict[str, Any], ranks: distributed.Ranks, path: Any) -> dict[str, Any]:
    """This rank's loss window and RNG state from a checkpoint written by as many processes."""
    saved = state.get("ranks", {})
    processes = max(1, len(saved))
    if processes != ranks.world_size:
        raise DlfpError(f"{path} was written by {processes} process(es) and this run has "
                        f"{ranks.world_size}; resume with torchrun --nproc_per_node={processes} "
                        "(or without torchrun for 1) so that every rank continues its own data")
    return saved[str(ranks.rank)] if ranks.active else state


def _check_changes(saved: dict[str, Any], current: dict[str, Any], run: Run) -> None:
    """Refuse to resume with a setting that shapes the run changed; allow (and log) the ones in
    ``RESUMABLE_CHANGES``."""
    before, after = dotted(saved), dotted(current)
    changed = sorted(k for k in before.keys() | after.keys()
                     if before.get(k, "<unset>") != after.get(k, "<unset>") and k not in NOT_SETTINGS)
    shown = [f"{k}: {before.get(k, '<unset>')} -> {after.get(k, '<unset>')}" for k in changed]
    refused = [s for k, s in zip(changed, shown) if not k.startswith(RESUMABLE_CHANGES)]
    if refused:
        raise DlfpError(
            f"resume=true would mix two runs: {run.dir} was trained with other settings "
            f"({'; '.join(refused)}). Resume with the settings it was started with, or start a new run "
            "(another hydra.run.dir). Only these may change on resume: "
            f"{', '.join(k.rstrip('.') for k in RESUMABLE_CHANGES)}"
        )
    if shown:
        log.warning("resuming %s with changed settings: %s", run.dir, "; ".join(shown))
