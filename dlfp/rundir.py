"""The run directory: refused before anything is written when it cannot hold the run, or when it holds
a run that a fresh one would overwrite (or a resume finds nothing in); and ``error.txt`` kept true.

Hydra creates the run directory, copies the config into ``.hydra/`` and opens ``train.log`` there
before the task starts, so the checks run as a Hydra callback (``hydra.callbacks`` in
conf/train.yaml) ahead of all that: a refused run touches no directory, and no data, tokenizer or
model is built first. ``error.txt`` describes the latest attempt only: a new attempt removes the
previous one's, and a failure beside a finished run's ``summary.json`` (a refused resume of it) leaves
none, since the run there is still good.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from dlfp.errors import DlfpError

ERROR_FILE = "error.txt"
# what a started or finished run leaves; one level down too: a compare run's sub-runs, a sweep's jobs
RUN_TRACES = ("checkpoints/last.*", "summary.json", "*/checkpoints/last.*", "*/summary.json")


class RunDirCheck(Callback):
    """Hydra callback: one ``error:`` line and exit 1 for an unusable ``hydra.run.dir`` or
    ``hydra.sweep.dir``, before Hydra creates or writes anything there."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _exit_on(directory_problem(config, "hydra.run.dir"))
        if config.get("resume"):
            resumed = Resumed.of(Path(str(config.hydra.run.dir)))
            _RESUMED[resumed.run_dir] = resumed

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        subdir = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir")  # per job
        if not str(subdir).strip():
            _exit_on(f"hydra.sweep.subdir={subdir!r} would put every job into the sweep directory "
                     "itself; leave it out (job N writes into <hydra.sweep.dir>/N)")
        _exit_on(directory_problem(config, "hydra.sweep.dir"))


@dataclass(frozen=True)
class Resumed:
    """A run directory as a resume found it, before Hydra rewrote its ``.hydra/`` record with the
    resume's settings: restored if the resume fails before it writes a checkpoint (a refused resume
    must not leave the run recorded with settings it never ran with)."""

    run_dir: Path
    record: dict[Path, bytes]
    checkpoints: dict[Path, int]

    @classmethod
    def of(cls, run_dir: Path) -> Resumed:
        run_dir = run_dir.resolve()
        return cls(run_dir, {p: p.read_bytes() for p in (run_dir / ".hydra").glob("*.yaml")},
                   _checkpoint_times(run_dir))

    def restore(self) -> None:
        if _checkpoint_times(self.run_dir) != self.checkpoints:
            return  # the resume trained: the record's settings are the checkpoint's now
        for path, data in self.record.items():
            with contextlib.suppress(OSError):
                path.write_bytes(data)


def _checkpoint_times(run_dir: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (run_dir / "checkpoints").glob("*")}


_RESUMED: dict[Path, Resumed] = {}  # this process's resumed run (a plain run: one), from on_run_start


def _exit_on(problem: str | None) -> None:
    if problem:
        sys.exit(f"error: {problem}")


def directory_problem(config: DictConfig, key: str) -> str | None:
    """Why the directory at ``key`` cannot take this run (``config.resume`` says whether it is meant
    to hold one already), or None."""
    path = str(OmegaConf.select(config, key))
    why = unusable(path)
    if why:
        return f"{key}={path!r} {why}; name a directory that can be created and written, or leave " \
               f"{key} out (outputs/...)"
    trace = run_trace(Path(path))
    if config.get("resume") and trace is None:
        return f"resume=true but {key}={path} holds no run to continue (no checkpoints/last.* or " \
               f"summary.json); resume names the run's directory: {key}=<that run's directory>"
    if not config.get("resume") and trace is not None:
        return f"{key}={path} already holds a run ({trace.relative_to(path)}): add resume=true to " \
               f"continue it, or choose another {key}"
    return None


def unusable(path: str) -> str | None:
    """Why ``path`` cannot become a run directory (empty, a file, under a file, not writable), or None.
    Creates nothing: the nearest existing folder above it is tried with a temporary file."""
    if not path.strip():
        return "is empty: the run's files would be written into the current directory"
    target = Path(path)
    existing = target
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if existing == target and not existing.is_dir():
        return "is not a directory"
    if not existing.is_dir():
        return f"lies under {existing}, which is not a directory"
    try:
        with tempfile.NamedTemporaryFile(dir=existing):
            pass
    except OSError as e:
        return f"cannot be created: {existing} accepts no new files ({e.strerror or e})"
    return None


def run_trace(run_dir: Path) -> Path | None:
    """The first file that shows a run started or finished in ``run_dir``, or None."""
    for pattern in RUN_TRACES:
        found = sorted(run_dir.glob(pattern), key=lambda p: (".prev" in p.name, p))  # last.pt first
        if found:
            return found[0]
    return None


def clear_failure(run_dir: Path) -> None:
    """Remove the ``error.txt`` of an earlier attempt: it describes a run this one replaces."""
    with contextlib.suppress(OSError):  # the directory itself is the problem; the run will say so
        (run_dir / ERROR_FILE).unlink(missing_ok=True)


def record_failure(run_dir: Path, error: Exception) -> None:
    """A failed run leaves ``error.txt`` (with the traceback when the error is not the user's to
    fix), which the sweep report lists as the job's reason; none beside a finished run's
    ``summary.json`` (a refused resume of it): the run there is still good. A resume that failed
    before writing a checkpoint also gets its ``.hydra/`` record back (``Resumed``)."""
    resumed = _RESUMED.pop(run_dir.resolve(), None)
    if resumed is not None:
        resumed.restore()
    if (run_dir / "summary.json").exists():
        return
    text = f"{type(error).__name__}: {error}\n"
    if not isinstance(error, DlfpError):
        text += "\n" + traceback.format_exc()
    path = run_dir / ERROR_FILE
    try:
        path.write_text(text)
    except OSError:  # the run directory is what failed (disk full, no permission): no 0-byte file
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
