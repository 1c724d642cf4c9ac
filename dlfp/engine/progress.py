"""Progress of a long loop: a tqdm bar on a terminal; otherwise about one log line per 1 % of the
work, so that CI logs and redirected output still show a run moving (and are not flooded)."""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm

log = logging.getLogger(__name__)


class Progress:
    def __init__(self, total: int, start: int = 0, desc: str = "step", unit: str = "step",
                 quiet: bool = False) -> None:
        """``quiet``: no bar and no lines (the data-parallel ranks other than 0)."""
        self.total, self.desc, self.printed_at, self.quiet = total, desc, start, quiet
        self.on_terminal = sys.stderr.isatty() and not quiet
        self.print_every = max(1, total // 100)
        self.bar = tqdm(total=total, initial=start, disable=not self.on_terminal, unit=unit,
                        desc=None if desc == "step" else desc, dynamic_ncols=True)

    def advance(self, n: int = 1) -> None:
        self.bar.update(n)

    def show(self, done: int, **values: float) -> None:
        """The latest values: on the bar, or in a log line when one is due (and at the end)."""
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)
        due = done == self.total or done - self.printed_at >= self.print_every
        if not self.on_terminal and not self.quiet and due:
            shown = " ".join(f"{k} {v:.4g}" for k, v in values.items())
            log.info("%s %d/%d %s", self.desc, done, self.total, shown)
            self.printed_at = done

    def tick(self, **values: float) -> None:
        """One unit of work done: ``advance`` and ``show``."""
        self.advance()
        self.show(int(self.bar.n), **values)

    def close(self) -> None:
        self.bar.close()
