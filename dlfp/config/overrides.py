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


# keys that moved to another section, old -> new: an override of the old key says where it lives
MOVED: dict[str, str] = {f"train.{key}": f"classify.{key}" for key in (
    "eval_splits", "label_smoothing", "adversarial", "adversarial_eps", "adversarial_steps",
    "adversarial_eval_images", "tta")} | {
    f"train.{key}": f"dataset.{key}" for key in ("transforms", "augment")}
HOMES = {"classify": "classification's options",  # what each destination section holds
         "dataset": "the per-batch transforms and augmentation"}


def moved_key_problem(overrides: Sequence[str]) -> str | None:
    """The first override naming a key that moved to another section, as one line saying where it
    lives now (Hydra's own refusal of the unknown key would not), or None."""
    for override in overrides:
        key = override_key(override)
        if key in MOVED:
            section, name = key.split(".", 1)
            new = MOVED[key]
            home = new.split(".", 1)[0]
            value = override.split("=", 1)[1] if "=" in override else "..."
            return (f"{key} is not a setting of {section}; {HOMES[home]} are under {home}.*: "
                    f"use {new}={value}")
    return None
