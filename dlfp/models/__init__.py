"""Torch modules, each built from its config node by ``build_model`` (``hydra.utils.instantiate``)."""

from __future__ import annotations

import json
from typing import Any

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from dlfp.errors import DlfpError


def build_model(cfg: DictConfig | dict, **extra: Any) -> nn.Module:
    """``instantiate(cfg, **extra)``, remembering the arguments as ``model.init_config`` so that a
    checkpoint holds what rebuilds the model (``rebuild_model``) without the run's config files."""
    if isinstance(cfg, DictConfig):
        init = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    else:
        init = dict(cfg)
    init.update(extra)
    model = instantiate(init)
    model.init_config = init
    return model


def model_from_schema(option: str, **arguments: Any) -> nn.Module:
    """Model option ``option`` (``conf/model/<option>.yaml``'s schema) at its schema's defaults,
    ``arguments`` changed: how tests and scripts build a model without a run's config, so that each
    default is stated once, in the schema. The class is called directly, so its own errors surface."""
    from dlfp.config import GROUP_SCHEMAS

    init = {**_defaults(GROUP_SCHEMAS["model"][option]), **arguments}
    model = get_class(init["_target_"])(**{k: v for k, v in init.items() if k != "_target_"})
    model.init_config = init
    return model


def rebuild_model(checkpoint: dict[str, Any]) -> nn.Module:
    """The model of a checkpoint written by the driver, with its weights, in eval mode on the CPU."""
    if not checkpoint.get("model_config"):
        raise DlfpError("this checkpoint does not say how to build its model (no model_config)")
    model = instantiate(_with_schema_defaults(json.loads(checkpoint["model_config"])))
    model.load_state_dict(checkpoint["update"]["model"])
    return model.eval()


def _with_schema_defaults(init: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's model arguments, completed by its schema's defaults for an argument the
    model gained after the checkpoint was written (FastNet's head_std)."""
    from dlfp.config import GROUP_SCHEMAS

    for schema in GROUP_SCHEMAS["model"].values():
        if getattr(schema, "_target_", None) == init.get("_target_"):
            return {**_defaults(schema), **init}
    return init


def _defaults(schema: type) -> dict[str, Any]:
    """A model schema's defaults as the plain arguments ``init_config`` holds."""
    return OmegaConf.to_container(OmegaConf.structured(schema), enum_to_str=True)
