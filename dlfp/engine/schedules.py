"""Learning-rate schedules: the factor of the configured lr for each update, a pure function of the
update's index (0-based), chosen by ``schedule.kind``.

Every kind of update (torch autograd, the NumPy network, the regression's hand-written step) gets
its lr from the driver as ``configured lr x factor(update index)``, so one schedule mechanism serves
them all and a resumed run needs no schedule state.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from omegaconf import DictConfig

from dlfp.errors import DlfpError

Factor = Callable[[int], float]


def lr_factor(cfg: DictConfig, total_steps: int, steps_per_epoch: int) -> Factor:
    """The schedule ``cfg`` over a run of ``total_steps`` updates of ``steps_per_epoch`` per epoch."""
    kind = str(cfg.kind)
    if kind not in SCHEDULES:
        raise DlfpError(f"schedule.kind={kind!r} is unknown; known kinds: {', '.join(SCHEDULES)}")
    return SCHEDULES[kind](cfg, total_steps, steps_per_epoch)


def check_budget(schedule: DictConfig | None, train: DictConfig | None,
                 steps_per_epoch: int | None = None) -> None:
    """Builds ``schedule`` for the run's update budget, so that a schedule that cannot fit it (a
    warm-up as long as the run, a one-cycle phase without updates) stops the run before any data or
    model is built: from the config alone for a budget in updates (``train.steps``), and for one in
    epochs as soon as the caller knows ``steps_per_epoch``."""
    if schedule is None or train is None:
        return
    steps = train.get("steps")
    if steps is None and train.get("epochs") is not None and steps_per_epoch is not None:
        steps = int(train.epochs) * steps_per_epoch
    if steps is not None:
        lr_factor(schedule, int(steps), steps_per_epoch or 1)


def _with_warmup(cfg: DictConfig, total_steps: int, after: Factor) -> Factor:
    """Linear warm-up from lr/warmup to lr over ``schedule.warmup_steps`` updates, then ``after``."""
    warmup = int(cfg.warmup_steps)
    if warmup >= total_steps and warmup > 0:
        raise DlfpError(f"schedule.warmup_steps={warmup} must be below the run's {total_steps} updates; "
                        "lower it, or raise train.steps (train.epochs)")
    return lambda step: (step + 1) / warmup if step < warmup else after(step)


def _decay(shape: Callable[[float], float]) -> Callable[[DictConfig, int, int], Factor]:
    """Warm-up, then from 1 down to ``final_lr_fraction`` along ``shape`` (1 at progress 0, 0 at 1)."""

    def build(cfg: DictConfig, total_steps: int, steps_per_epoch: int) -> Factor:
        warmup, final = int(cfg.warmup_steps), float(cfg.final_lr_fraction)
        span = max(1, total_steps - warmup)
        return _with_warmup(cfg, total_steps,
                            lambda step: final + (1 - final) * shape(min(1.0, (step - warmup) / span)))

    return build


def _constant(cfg: DictConfig, total_steps: int, steps_per_epoch: int) -> Factor:
    return _with_warmup(cfg, total_steps, lambda step: 1.0)


def _multistep(cfg: DictConfig, total_steps: int, steps_per_epoch: int) -> Factor:
    """x ``gamma`` at each milestone (torch's MultiStepLR); milestones count epochs or updates."""
    unit = str(cfg.unit)
    per = steps_per_epoch if unit == "epochs" else 1
    milestones = sorted(int(m) * per for m in cfg.milestones)
    gamma = float(cfg.gamma)
    return _with_warmup(cfg, total_steps,
                        lambda step: gamma ** sum(step >= m for m in milestones))


def _onecycle(cfg: DictConfig, total_steps: int, steps_per_epoch: int) -> Factor:
    """torch's OneCycleLR (two phases, ``anneal``: cos or linear) as a fraction of its max lr: from
    1/div_factor up to 1 over the first ``pct_start`` of the run, then down to
    1/(div_factor x final_div_factor) at the last update. Linear is the triangle of the fast
    CIFAR trainers."""
    initial = 1.0 / float(cfg.div_factor)
    final = initial / float(cfg.final_div_factor)
    peak_step = float(cfg.pct_start) * total_steps - 1
    last_step = total_steps - 1
    if not 0 < peak_step < last_step:
        raise DlfpError(f"schedule.pct_start={cfg.pct_start} leaves no warm-up or no decay in a run of "
                        f"{total_steps} updates; choose it so that 1 < pct_start x updates < updates")

    def cos(start: float, end: float, pct: float) -> float:
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    def linear(start: float, end: float, pct: float) -> float:
        return start + (end - start) * pct

    shape = cfg.get("anneal", "cos")
    anneal = linear if str(shape) == "linear" else cos

    def factor(step: int) -> float:
        if step <= peak_step:
            return anneal(initial, 1.0, step / peak_step)
        return anneal(1.0, final, min(1.0, (step - peak_step) / (last_step - peak_step)))

    return factor


SCHEDULES: dict[str, Callable[[DictConfig, int, int], Factor]] = {
    "constant": _constant,
    "cosine": _decay(lambda p: 0.5 * (1 + math.cos(math.pi * p))),
    "linear": _decay(lambda p: 1 - p),
    "multistep": _multistep,
    "onecycle": _onecycle,
}
