"""Atomic checkpoints that load without unpickling: ``torch.load(weights_only=True)`` for ``.pt``
files, ``np.load(allow_pickle=False)`` for the NumPy network's ``.npz`` files.

A checkpoint is a nested dict of tensors, arrays, numbers and strings. Every RNG state (Python,
NumPy, torch CPU and CUDA) is stored as plain tensors and numbers, so a resumed run draws exactly
the random numbers the uninterrupted run would have drawn.
"""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlfp.errors import DlfpError

log = logging.getLogger(__name__)


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "python": torch.tensor(py_state[1], dtype=torch.int64),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_gauss": [int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` saved, read back from either checkpoint format."""
    random.setstate((3, tuple(int(v) for v in state["python"].tolist()), None))
    has_gauss, gauss = state["numpy_gauss"]
    keys = np.asarray(state["numpy_keys"]).astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(state["numpy_pos"]), int(has_gauss), float(gauss)))
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def previous(path: Path) -> Path:
    """Where the checkpoint before ``path`` is kept: ``last.pt`` -> ``last.prev.pt``."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, then rename: a kill never leaves half a file.
    The checkpoint it replaces is kept as ``previous(path)``, a fallback should the new one be
    damaged later. A failed write (disk full, no permission) leaves no temporary file behind."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".npz":
            with tmp.open("wb") as f:
                np.savez(f, **_flatten(state))
        else:
            torch.save(state, tmp)
        if path.exists():  # a hard link, so that a checkpoint stands at ``path`` at every moment
            link = previous(path).with_name(f".{previous(path).name}.tmp")
            link.unlink(missing_ok=True)
            os.link(path, link)
            os.replace(link, previous(path))
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DlfpError(f"cannot write the checkpoint {path}: {e.strerror or e}; free disk space or "
                        "make the run directory writable, then resume=true") from None


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as saved:
            return _unflatten({key: saved[key] for key in saved.files})
    return torch.load(path, map_location=map_location, weights_only=True)


def load_trained(path: Path, task: str) -> dict[str, Any]:
    """The checkpoint of a finished or running ``task`` run: a checkpoint file, or a run directory's
    ``checkpoints/last.pt``. One DlfpError when there is none, it does not load, or it is another
    task's."""
    ckpt_path = path / "checkpoints" / "last.pt" if path.is_dir() else path
    if not ckpt_path.is_file():
        raise DlfpError(f"{path} holds no checkpoint: name a run directory of task {task} or its "
                        "checkpoints/last.pt")
    try:
        checkpoint = load_checkpoint(ckpt_path, "cpu")
        trained_task = json.loads(checkpoint["config"]).get("task")
    except Exception as e:  # noqa: BLE001 - any failure here means the file is not a usable checkpoint
        raise DlfpError(f"{ckpt_path} is not a readable dlfp checkpoint ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if trained_task != task:
        raise DlfpError(f"{ckpt_path} is a checkpoint of task {trained_task!r}, not of task {task!r}")
    return checkpoint


def load_for_resume(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint at ``path``; if it is damaged, the one before it, with a warning; one
    DlfpError naming the files if neither loads."""
    problems = []
    for candidate in (path, previous(path)):
        if not candidate.exists():
            continue
        try:
            state = load_checkpoint(candidate, map_location)
            if "step" not in state or "update" not in state:
                raise ValueError("it is not a checkpoint of the training driver")
        except Exception as e:  # noqa: BLE001 - any damage means: try the previous one, then explain
            first_line = str(e).splitlines()[0] if str(e) else ""
            problems.append(f"{candidate.name} ({type(e).__name__}: {first_line})")
            continue
        if candidate != path:
            log.warning("%s is damaged (%s); resuming from %s instead", path, problems[0], candidate)
        return state
    raise DlfpError(f"cannot resume from {path.parent}: {'; '.join(problems) or 'no checkpoint'}. "
                    "Start a new run (another hydra.run.dir) instead.")


def _flatten(state: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dict -> {"a/b": array}; tensors become arrays, scalars and strings 0-d arrays."""
    flat: dict[str, np.ndarray] = {}
    for key, value in state.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "/"))
        elif isinstance(value, torch.Tensor):
            flat[name] = value.detach().cpu().numpy()
        elif value is not None:
            flat[name] = np.asarray(value)
    return flat


def _unflatten(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for name, value in flat.items():
        *parents, key = name.split("/")
        node = state
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value.item() if value.ndim == 0 else value
    return state


def check_resumable(path: Path, run_dir: Path, resume: bool) -> None:
    """A resumed run needs its checkpoint; a fresh run must not silently overwrite one."""
    others = sorted(p.name for p in path.parent.glob("last.*")
                    if p.suffix != path.suffix and ".prev" not in p.name) if path.parent.is_dir() else []
    if resume and not path.exists() and others:
        raise DlfpError(
            f"resume=true but {run_dir} holds checkpoints/{others[0]}, written by another kind of "
            f"experiment than this one (which writes {path.name}); resume it with the experiment "
            "and overrides it was started with"
        )
    if resume and not path.exists():
        raise DlfpError(
            f"resume=true but {path} does not exist. Resume names the run to continue "
            "with hydra.run.dir=<that run's directory>."
        )
    if not resume and path.exists():
        raise DlfpError(
            f"{run_dir} already holds a checkpoint: add resume=true to continue it, or choose "
            "another hydra.run.dir"
        )


def raise_non_finite(step: int, path: Path, what: str) -> None:
    """Stop training on a NaN/inf ``what`` (loss or parameters), naming the last good checkpoint."""
    kept = f"the last good checkpoint is {path}" if path.exists() else "no checkpoint yet"
    raise DlfpError(
        f"training {what} became NaN or infinite by update {step}; stopped ({kept}). Start a new run "
        "(another hydra.run.dir) with a lower optimizer.lr or with train.grad_clip set, or check the "
        "data for bad values (resume=true keeps this run's settings)."
    )
