"""One runner per kind of experiment, chosen by ``cfg.task``.

Each entry is "module:function", imported only when chosen, so a run pays for the imports it
uses. A runner takes ``(cfg, run)`` and returns its final metrics as a flat ``{name: value}``.
Each task also declares what it reads of the config (``READS``; dlfp/config/scope.py), so a
setting it would ignore is refused before the run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from omegaconf import DictConfig

from dlfp.config.dataset import TRANSFORM_KEYS
from dlfp.config.scope import Reads
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

# what each task reads beyond every run's keys (dlfp/config/scope.py): the trained tasks read the
# driver's train keys; the dataset's per-batch transforms belong to the tasks that build batch loaders,
# the optimizer's parameter routes to the tasks that build their optimizers with build_optimizer
TRAINED = frozenset({"train", "model", "dataset", "optimizer", "schedule"})
ROUTES = {"optimizer": frozenset({"routes"})}
READS: dict[str, Reads] = {
    "classify": Reads(TRAINED | {"classify"}, {"dataset": TRANSFORM_KEYS, **ROUTES}),  # image_loaders
    "regression": Reads(TRAINED | {"regression"}, ROUTES),
    "svm": Reads(frozenset({"dataset", "features", "svm"})),
    "compare": Reads(everything=True),  # each experiment it runs is checked as its own run
    "scratch_nn": Reads(TRAINED, {"dataset": TRANSFORM_KEYS}),  # image_loaders; its own NumPy SGD
    "vae": Reads(TRAINED | {"vae"}, ROUTES),
    "adversarial": Reads(frozenset({"adversarial"})),  # model, data and split come from the checkpoint
    "lm": Reads(TRAINED - {"dataset"} | {"tokenizer", "corpus", "lm"}, ROUTES),  # data: corpus, tokenizer
    "ddpm": Reads(TRAINED | {"ddpm"}, {"dataset": frozenset({"transforms"}), **ROUTES}),  # no augmentation
}


def get_task(name: str) -> Runner:
    module, func = TASKS[_known(name)].split(":")
    return getattr(importlib.import_module(module), func)


def task_reads(name: str) -> Reads:
    """What task ``name`` reads of the config."""
    return READS[_known(name)]


def _known(name: str) -> str:
    if name not in TASKS:
        raise DlfpError(f"task={name!r} is unknown; known tasks: {', '.join(sorted(TASKS))}")
    return name
