"""A run's config as plain data: what checkpoints store, resume compares and trackers log."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


def plain_config(cfg: DictConfig | dict) -> dict[str, Any]:
    """The resolved config as dicts, lists and scalars (unresolved where an interpolation needs a
    running Hydra app)."""
    if not isinstance(cfg, DictConfig):
        return dict(cfg)
    try:
        return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    except OmegaConfBaseException:
        return OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)


def dotted(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"train.steps": 10, ...}``; lists and scalars are leaves."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(dotted(value, f"{prefix}{key}."))
    return flat
