"""Datasets as in-memory tensors, and the loader that batches them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from dlfp.config.dataset import TRANSFORM_KEYS
from dlfp.data.images import ImageData, Split

__all__ = ["ImageData", "Split", "load_dataset"]


def load_dataset(dataset: Mapping[str, Any]) -> Any:
    """The dataset a ``dataset`` config section (or a saved run's) names, built by its ``_target_``
    from its keys but the per-batch transforms (``dataset.transforms``, ``dataset.augment``), which
    the batch loaders read and the dataset's loader does not take."""
    if isinstance(dataset, DictConfig):
        dataset = OmegaConf.to_container(dataset, resolve=True)
    return instantiate({key: value for key, value in dataset.items() if key not in TRANSFORM_KEYS})
