"""metrics.jsonl: one JSON object per logged step and split."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlfp.engine.tracking import Mirror
from dlfp.errors import DlfpError

log = logging.getLogger(__name__)


class MetricLog:
    """Appends records ``{"step", "epoch", "split", <metric>: value, ...}`` and flushes each one.
    With ``writes=False`` (data-parallel ranks other than 0) it reads the file but never changes it.
    ``mirrors`` (``engine.tracking``: TensorBoard, MLflow) receive every record written."""

    def __init__(self, path: Path, writes: bool = True, mirrors: Sequence[Mirror] = ()) -> None:
        self.path, self.writes, self.mirrors = path, writes, list(mirrors)

    def log(self, step: int, split: str, epoch: float | None = None, **metrics: float) -> None:
        if not self.writes:
            return
        record: dict[str, Any] = {"step": step, "epoch": epoch, "split": split}
        record.update({k: float(v) for k, v in metrics.items()})
        try:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise DlfpError(f"cannot write {self.path}: {e.strerror or e}; free disk space or make the "
                            "run directory writable") from None
        for mirror in self.mirrors:
            mirror.log(step, split, {k: v for k, v in record.items() if k not in ("step", "epoch", "split")})

    def records(self, split: str | None = None) -> list[dict[str, Any]]:
        """Every record; a last line cut short by a kill mid-write is left out."""
        if not self.path.exists():
            return []
        lines = [line for line in self.path.read_text().splitlines() if line.strip()]
        rows = []
        for number, line in enumerate(lines, 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if number < len(lines):
                    raise DlfpError(f"{self.path} line {number} is not a JSON record; the file is "
                                    "damaged (only a last line cut short by a kill is skipped)") from None
                log.warning("%s: dropped a last line cut short (%d characters)", self.path, len(line))
        return [r for r in rows if split is None or r["split"] == split]

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (and a torn last line): a resumed run logs them again."""
        if not self.writes:
            return
        kept = [r for r in self.records() if r["step"] <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.path)

    def close(self) -> None:
        for mirror in self.mirrors:
            mirror.close()

    def clear(self) -> None:
        """Start a fresh file (a fresh run into a directory a killed run left records in)."""
        if not self.writes:
            return
        self.path.unlink(missing_ok=True)
