"""train=: the training driver's budget, cadence and options, and the loader's batches."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from dlfp.config.checks import Rule, limit


class CadenceUnit(StrEnum):
    updates = "updates"
    epochs = "epochs"


@dataclass
class TrainLoopConfig:
    steps: int | None = limit(None, ge=1)  # update budget; exactly one of steps / epochs is set
    epochs: int | None = limit(None, ge=1)
    batch_size: int = limit(32, ge=1)
    eval_batch_size: int = limit(1000, ge=1)
    cadence: CadenceUnit = CadenceUnit.updates  # unit of eval_every, log_every, checkpoint_every
    eval_every: int = limit(500, ge=1)  # between validation passes (also one after the last update)
    eval_at_start: bool = True  # also evaluate the untrained weights, at step 0 (off in the epoch recipes)
    log_every: int = limit(100, ge=1)  # between train records (mean loss since the last one, lr)
    checkpoint_every: int = limit(1000, ge=1)  # between checkpoints (one is also written at the end)
    grad_clip: float | None = limit(None, gt=0)  # max global gradient norm; null disables clipping
    accumulate: int = limit(1, ge=1)  # micro-batches per batch, gradients summed: same update, less memory
    ema_decay: float | None = limit(None, ge=0, lt=1)  # EMA of the weights, evaluated and checkpointed too
    ema_warmup: bool = False  # decay min(ema_decay, (1 + n) / (10 + n)) after n updates (engine/ema.py)
    lookahead_decay: float | None = limit(None, ge=0, le=1)  # weights pulled to their average (ema.Lookahead)
    lookahead_every: int = limit(5, ge=1)  # updates between lookahead pulls
    record_seconds: bool = False  # evaluation records carry the training seconds so far (resumes included)
    stop_loss: float | None = limit(None, ge=0)  # stop once a train record's loss is at or below this

    RULES: ClassVar = (Rule(("steps", "epochs"), lambda steps, epochs: steps is None or epochs is None,
                            "set only one of them (the other to null)"),)


SCHEMAS = {"train": {"train": TrainLoopConfig}}
