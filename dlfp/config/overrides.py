"""What the command-line overrides mean beyond their values: a budget given there replaces the
experiment's other budget."""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

BUDGETS = ("train.steps", "train.epochs")  # an experiment states exactly one


def override_key(override: str) -> str:
    """``+a.b=1`` / ``~a.b`` / ``dataset=mnist`` -> ``a.b`` / ``a.b`` / ``dataset``."""
    return override.split("=", 1)[0].lstrip("+~")


def replace_budget(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """``train.steps`` or ``train.epochs`` set on the command line replaces the experiment's other
    budget (``experiment=cifar_fast train.steps=20`` needs no ``train.epochs=null``): the other
    becomes null. Overrides naming both are left as they are, for the check that refuses two."""
    named = {override_key(o) for o in overrides} & set(BUDGETS)
    if len(named) != 1 or cfg.get("train") is None:
        return
    given = named.pop()
    if OmegaConf.select(cfg, given) is not None:
        other = BUDGETS[1 - BUDGETS.index(given)]
        OmegaConf.update(cfg, other, None)
