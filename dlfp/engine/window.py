"""The training loss and any extra terms summed since the last train record.

Torch losses are summed on their device (float32, no sync until a record is due); plain float
losses (the NumPy network's) in float64. The window is part of the checkpoint, so a run resumed
mid-window logs the same means as one never interrupted.
"""

from __future__ import annotations

from typing import Any

import torch

RECORD_KEYS = frozenset({"step", "epoch", "split", "loss", "lr"})


class LossWindow:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.sums: torch.Tensor | None = None
        self.count = 0

    def add(self, loss: torch.Tensor | float, extras: dict[str, Any]) -> None:
        if self.sums is None:
            clash = RECORD_KEYS & set(extras)
            if clash:
                raise ValueError(f"the update's extra terms {sorted(clash)} clash with the train "
                                 "record's keys")
            self.names = ["loss", *extras]
        values = [loss, *(extras[k] for k in self.names[1:])]
        if isinstance(loss, torch.Tensor):
            terms = torch.stack([v.detach().float() for v in values])
        else:
            terms = torch.tensor(values, dtype=torch.float64)
        self.sums = terms if self.sums is None else self.sums + terms
        self.count += 1

    def means(self) -> dict[str, float]:
        return dict(zip(self.names, (self.sums / self.count).tolist()))

    def reset(self) -> None:
        self.sums, self.count = None, 0

    def state_dict(self) -> dict[str, Any]:
        return {"names": self.names, "sums": self.sums, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        sums = state.get("sums")
        self.names = [str(name) for name in state.get("names", [])]
        self.sums = None if sums is None else torch.as_tensor(sums)
        self.count = int(state["count"])
