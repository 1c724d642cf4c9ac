"""metrics.jsonl: one JSON object per logged step and split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class MetricLog:
    """Appends records ``{"step", "epoch", "split", <metric>: value, ...}`` and flushes each one."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def log(self, step: int, split: str, epoch: float | None = None, **metrics: float) -> None:
        record: dict[str, Any] = {"step": step, "epoch": epoch, "split": split}
        record.update({k: float(v) for k, v in metrics.items()})
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self, split: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        rows = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        return [r for r in rows if split is None or r["split"] == split]

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step``: a resumed run logs them again."""
        kept = [r for r in self.records() if r["step"] <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.path)
