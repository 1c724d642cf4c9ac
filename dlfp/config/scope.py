"""Scoped settings: each task declares what it reads of the config, and a value for anything else
is refused before any data loads, instead of being silently ignored.

The runner reads ``EVERY_RUN`` for every task. Beyond that a task declares (``Reads``, in the task
registry ``dlfp.tasks.READS``) the top-level sections it reads and, of a shared section, which of
its scoped keys (``SCOPED``: read only by the tasks that say so) it reads; every task that reads a
section reads its other keys. ``check_scope`` refuses a section the task does not read that is
present (not null) in the composed config, and a scoped key the task does not read whose value
differs from its schema's default: shipped configs leave such keys at their defaults, so only a
value someone set is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from omegaconf import DictConfig, OmegaConf

from dlfp.config.checks import validate
from dlfp.config.dataset import TRANSFORM_KEYS
from dlfp.config.overrides import replace_budget, replaced_list_problem
from dlfp.config.train import TrainLoopConfig
from dlfp.errors import DlfpError

# read by the runner for every task: the run's identity, seed and paths, trackers, device and threads
EVERY_RUN = frozenset({"task", "experiment_name", "seed", "objective", "resume", "paths", "tracking",
                       "hardware"})
# the train keys the driver (dlfp/engine/driver.py, updates.py) and every trained task's loader read
DRIVER_KEYS = frozenset({
    "steps", "epochs", "batch_size", "eval_batch_size", "cadence", "eval_every", "eval_at_start",
    "log_every", "checkpoint_every", "grad_clip", "accumulate", "ema_decay", "ema_warmup",
    "lookahead_decay", "lookahead_every", "record_seconds", "stop_loss",
})
# shared sections: their keys that only the tasks declaring them (``Reads.keys``) read. Every train
# key beyond the driver's is one (there are none: a new one is refused until a task declares it);
# of an image dataset, the per-batch transforms, which the batch loaders read and not every task
# builds (the SVM and the VAE take the dataset's tensors as they are); of the optimizer, the
# parameter routes, which build_optimizer reads and the NumPy network's own SGD does not
SCOPED: Mapping[str, frozenset[str]] = {
    "train": frozenset(f.name for f in fields(TrainLoopConfig)) - DRIVER_KEYS,
    "dataset": TRANSFORM_KEYS,
    "optimizer": frozenset({"routes"}),
}


@dataclass(frozen=True)
class Reads:
    """What one task reads beyond ``EVERY_RUN``: top-level ``sections`` and, per shared section,
    the ``keys`` of ``SCOPED``'s it reads. ``everything``: the task passes the config on to other
    experiments (compare), whose own runs are checked."""

    sections: frozenset[str] = frozenset()
    keys: Mapping[str, frozenset[str]] = field(default_factory=dict)
    everything: bool = False


def check_run_config(cfg: DictConfig, overrides: list[str], reads: Reads) -> None:
    """Everything about a run's config that needs no data, in order: a budget given on the command
    line replaces the other, no list of an option chosen there is lost to the experiment's, the
    values' ranges and relations, the task's scope. The runner calls it for every run, and compare
    for each of its experiments before it runs any."""
    replace_budget(cfg, overrides)
    replaced = replaced_list_problem(cfg, overrides)
    if replaced:
        raise DlfpError(replaced)
    validate(cfg)
    check_scope(cfg, reads)


def check_scope(cfg: DictConfig, reads: Reads) -> None:
    """Raise one DlfpError naming every setting of ``cfg`` its task (``reads``) does not read."""
    problems = scope_problems(cfg, reads)
    if problems:
        raise DlfpError("; ".join(problems))


def scope_problems(cfg: DictConfig, reads: Reads) -> list[str]:
    if reads.everything:
        return []
    where = f"experiment {cfg.get('experiment_name')} (task {cfg.get('task')})"
    problems = []
    for section in cfg.keys():
        if section in EVERY_RUN or section == "hydra" or cfg.get(section) is None:
            continue
        if section not in reads.sections:
            problems.append(f"{section} is set, but {where} does not read it: it would have no effect; "
                            f"remove it (drop the {section}=... or {section}.* override)")
        elif section in SCOPED:
            unread = SCOPED[section] - reads.keys.get(section, frozenset())
            problems += _unread_keys(cfg[section], section, unread, where)
    return problems


def _unread_keys(node: DictConfig, section: str, unread: frozenset[str], where: str) -> list[str]:
    """The keys of a shared section in ``unread`` whose values differ from the schema's defaults."""
    values = OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    defaults = OmegaConf.to_container(OmegaConf.structured(OmegaConf.get_type(node)), enum_to_str=True)
    return [f"{section}.{key}={_shown(values[key])} has no effect in {where}, which does not read it; "
            f"remove it" for key in values if key in unread and values[key] != defaults.get(key)]


def _shown(value: object) -> str:
    if isinstance(value, list):
        return "[" + ",".join(_shown(v) for v in value) + "]"
    return str(value)
