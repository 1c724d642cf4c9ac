"""A trained classifier rebuilt from its checkpoint alone, to analyse (attacks) or to score images
(the DDPM's sample quality): its input transforms go inside the model, so it takes pixels in
[0, 1], and the dataset it was trained on is read again from this run's data folder, so that the
transforms' statistics are the training run's."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from dlfp.data import ImageData, load_dataset
from dlfp.data.transforms import build_transforms
from dlfp.engine.checkpoint import load_trained
from dlfp.errors import DlfpError
from dlfp.eval.attacks import PixelModel
from dlfp.models import rebuild_model


def load_classifier(path: Path | str, data_dir: str, device: torch.device | str,
                    need_data: bool = True) -> tuple[PixelModel, ImageData | None]:
    """The classifier of a ``classify`` run (its directory or checkpoint) on pixels in [0, 1], in
    float32 eval mode on ``device``, and its dataset. With ``need_data=False`` the dataset is read
    only when the input transforms need its statistics (``standardize``), and may come back None."""
    checkpoint = load_trained(Path(path).expanduser(), "classify")
    trained = json.loads(checkpoint["config"])
    entries = input_transforms(trained)
    needs_statistics = any((e if isinstance(e, str) else e.get("name")) == "standardize" for e in entries)
    data = trained_data(trained, data_dir) if need_data or needs_statistics else None
    net = rebuild_model(checkpoint).float().to(device).eval()
    return PixelModel(net, build_transforms(entries, data)).eval(), data


def input_transforms(trained: dict) -> list:
    """The input transforms of a training run's config: ``dataset.transforms``, or in a checkpoint
    written before they moved there, ``train.transforms``."""
    return trained["dataset"].get("transforms", trained.get("train", {}).get("transforms", []))


def trained_data(trained: dict, data_dir: str) -> ImageData:
    """The dataset of a training run's config, read from ``data_dir``."""
    dataset = dict(trained["dataset"])
    if "root" in dataset:
        dataset["root"] = str(data_dir)
    data = load_dataset(dataset)
    if not isinstance(data, ImageData):
        raise DlfpError(f"the checkpoint's dataset {dataset.get('_target_')} is not an image dataset")
    return data


SAME_IMAGES = {"mnist5k": "mnist"}  # the 5,000 embedded digits are MNIST's own


def image_source(dataset: Mapping[str, Any]) -> str:
    """Which images a dataset config reads: its ``name`` (mnist, fashion_mnist, mnist5k -> mnist)
    or, for loaders without one, the loader's (cifar10, cifar_synthetic)."""
    name = dataset.get("name") or str(dataset.get("_target_", "")).rsplit(".", 1)[-1].removeprefix("load_")
    return SAME_IMAGES.get(name, name)


def check_trained(path: Path | str, task: str, dataset: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The checkpoint that config key ``key`` names, checked before any data loads (reading it is
    cheap; finding it missing after hours of training is not): it exists, is a ``task`` run's, and
    was trained on the images of ``dataset`` (this run's dataset config). One DlfpError naming
    ``key`` otherwise."""
    try:
        checkpoint = load_trained(Path(path).expanduser(), task)
    except DlfpError as e:
        raise DlfpError(f"{key}: {e}") from None
    trained, wanted = image_source(json.loads(checkpoint["config"])["dataset"]), image_source(dataset)
    if trained != wanted:
        raise DlfpError(f"{key}={path} was trained on {trained} images, but this run's are {wanted}: "
                        f"name a {task} run trained on {wanted}")
    return checkpoint
