"""Dataclass schemas for every config node, one module per group or study section, registered in
Hydra's ConfigStore.

Each YAML option extends its schema through its defaults list
(``- /schema/<group>@_here_: <name>``), so a misspelled key or a value of the wrong type fails at
composition time, before any work, with an error that names the key.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dlfp.config import (
    adversarial,
    classify,
    dataset,
    ddpm,
    hardware,
    lm,
    model,
    optimizer,
    regression,
    root,
    schedule,
    svm,
    train,
    vae,
)

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")  # absolute: console scripts too

GROUP_SCHEMAS: dict[str, dict[str, type]] = {}
for _module in (hardware, train, optimizer, schedule, model, dataset, vae, svm, regression, adversarial, lm,
                ddpm, classify):
    for _group, _options in _module.SCHEMAS.items():
        GROUP_SCHEMAS.setdefault(_group, {}).update(_options)


def register_configs() -> None:
    """Put the root schema and one schema per group option into Hydra's ConfigStore. The root
    schema is not in struct mode while configs compose, so an experiment adds the sections it
    uses (and only those: dlfp/config/scope.py refuses the rest); Hydra sets struct mode after."""
    OmegaConf.register_new_resolver("experiment_file", _experiment_file, replace=True)
    cs = ConfigStore.instance()
    schema = OmegaConf.structured(root.RootConfig)
    OmegaConf.set_struct(schema, False)
    cs.store(name="train_schema", node=schema)
    for group, schemas in GROUP_SCHEMAS.items():
        for name, node in schemas.items():
            cs.store(group=f"schema/{group}", name=name, node=node)


def _experiment_file(*, _root_: DictConfig) -> str:
    """``${experiment_file:}``, the default ``experiment_name``: the experiment file the config
    composed (``experiment=NAME``). From the config's own ``hydra`` node where it has one (a sweep
    resolves its directory before Hydra's global config is set), else from Hydra's global config."""
    hydra_node = _root_.get("hydra") if "hydra" in _root_ else None
    choices = hydra_node.runtime.choices if hydra_node is not None else HydraConfig.get().runtime.choices
    return choices.experiment
