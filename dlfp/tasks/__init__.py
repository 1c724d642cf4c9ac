"""One runner per kind of experiment, chosen by ``cfg.task``.

Each entry is "module:function", imported only when chosen, so a run pays for the imports it
uses. A runner takes ``(cfg, run)`` and returns its final metrics as a flat ``{name: value}``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from omegaconf import DictConfig

from dlfp.engine.run import Run
from dlfp.errors import DlfpError

Runner = Callable[[DictConfig, Run], dict[str, float]]

TASKS: dict[str, str] = {
    "classify": "dlfp.tasks.classify:run",
    "regression": "dlfp.tasks.regression:run",
    "svm": "dlfp.tasks.svm:run",
    "compare": "dlfp.tasks.compare:run",
    "scratch_nn": "dlfp.tasks.scratch_nn:run",
    "vae": "dlfp.tasks.vae:run",
    "adversarial": "dlfp.tasks.adversarial:run",
    "lm": "dlfp.tasks.lm:run",
    "ddpm": "dlfp.tasks.ddpm:run",
}

# tasks that train through TorchUpdate and can run under torchrun (the NumPy network, the SVMs,
# the regression's hand-written update and the analyses of trained models run as one process)
DATA_PARALLEL = frozenset({"classify", "vae", "lm", "ddpm"})


def get_task(name: str) -> Runner:
    if name not in TASKS:
        raise DlfpError(f"task={name!r} is unknown; known tasks: {', '.join(sorted(TASKS))}")
    module, func = TASKS[name].split(":")
    return getattr(importlib.import_module(module), func)
