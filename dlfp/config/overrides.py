"""What the command-line overrides mean beyond their values: a budget given there replaces the
experiment's other budget."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

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


def absent_section_problem(args: Sequence[str]) -> str | None:
    """The first override of a key under a section the chosen experiment does not compose (a
    ``classify.*`` value for the LM, ``train.*`` for the SVMs), as one line naming the key and the
    experiment, or None. Hydra's own refusal takes several lines and suggests ``+key=value``,
    which the scope check would refuse next. Composes the config once, and only when an override
    names a section outside the root schema; anything it cannot judge is left to Hydra."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from dlfp.config import CONF_DIR
    from dlfp.config.root import RootConfig

    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in args):
        return None  # --cfg, --config-name, --help...: Hydra's
    try:
        overrides = OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-")])
    except Exception:
        return None  # a syntax error: Hydra names it
    root = set(RootConfig.__dataclass_fields__) | {"hydra"}
    candidates = [o for o in overrides if not (o.is_add() or o.is_delete() or o.is_force_add())
                  and "." in o.key_or_group and o.key_or_group.split(".")[0] not in root]
    if not candidates or any(o.is_sweep_override() and (Path(CONF_DIR) / o.key_or_group).is_dir()
                             for o in overrides):
        return None  # nothing to judge, or several configs (a swept group choice)
    kept = [o.input_line for o in overrides if o not in candidates and not o.is_sweep_override()
            and not o.key_or_group.startswith("hydra")]
    try:
        with initialize_config_dir(CONF_DIR, version_base="1.3"):
            cfg = compose("train", overrides=kept, return_hydra_config=True)
    except Exception:
        return None  # another problem: Hydra reports it
    for override in candidates:
        section = override.key_or_group.split(".")[0]
        if section not in cfg:
            return (f"{override.input_line}: experiment {cfg.hydra.runtime.choices.experiment} has no "
                    f"{section} section (it does not read {section}), so it would have no effect; remove it")
    return None


def replaced_list_problem(cfg: DictConfig, overrides: Sequence[str]) -> str | None:
    """A list that a group option chosen on the command line sets and the experiment then replaces
    (Hydra replaces lists, it does not merge them): ``experiment=cifar_fast optimizer=muon`` would
    otherwise run with cifar_fast's ``optimizer.routes`` and no Muon at all. None if there is none."""
    from dlfp.config import CONF_DIR

    keys = {override_key(o) for o in overrides}
    for override in overrides:
        group, _, option = override.partition("=")
        path = Path(CONF_DIR) / group / f"{option}.yaml"
        if "." in group or group.startswith(("+", "~")) or not path.is_file() or group not in cfg:
            continue
        for key, value in OmegaConf.load(path).items():
            if key == "defaults" or not isinstance(value, ListConfig) or f"{group}.{key}" in keys:
                continue
            chosen, final = OmegaConf.to_container(value), OmegaConf.to_container(cfg[group].get(key))
            if chosen != final:
                return (f"{override} sets {group}.{key}, but experiment {cfg.experiment_name} replaces it "
                        f"with its own ({final}): Hydra replaces lists, it does not merge them; give the "
                        f"{group}.{key} you want on the command line or in an experiment file")
    return None
