"""train=: the training driver's budget, cadence and options, and the loader's batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class CadenceUnit(Enum):
    updates = "updates"
    epochs = "epochs"


@dataclass
class TrainLoopConfig:
    steps: int | None = None  # update budget; exactly one of steps / epochs is set
    epochs: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 1000
    cadence: CadenceUnit = CadenceUnit.updates  # unit of eval_every, log_every, checkpoint_every
    eval_every: int = 500  # between validation passes (one is also run at the start and the end)
    log_every: int = 100  # between train records (mean loss since the last one, lr)
    checkpoint_every: int = 1000  # between checkpoints (one is also written at the end)
    grad_clip: float | None = None  # max global gradient norm; null disables clipping
    accumulate: int = 1  # micro-batches per batch, gradients summed: same update, less memory
    ema_decay: float | None = None  # EMA of the weights, evaluated and checkpointed beside them
    stop_loss: float | None = None  # stop once a train record's loss is at or below this
    transforms: list[Any] = field(default_factory=list)  # per-batch transforms, every split
    augment: list[Any] = field(default_factory=list)  # per-batch transforms, training batches only


SCHEMAS = {"train": {"train": TrainLoopConfig}}
