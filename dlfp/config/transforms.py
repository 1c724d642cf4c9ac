"""The options of each per-batch transform (``dataset.transforms``, ``dataset.augment``), by name.

An entry is a name (``hflip``) or a mapping with ``name`` and options
(``{name: random_crop, padding: 4}``); its options are read with the types and checked against the
ranges of the name's schema below, in the one validation pass before any data loads. These are
the options' only defaults: dlfp/data/transforms.py builds each transform from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from dlfp.config.checks import Rule, limit


@dataclass
class FieldOptions:
    field: str = "x"  # the batch field (images) transformed


@dataclass
class RescaleOptions(FieldOptions):
    low: float = -1.0  # images -> float in [low, high]
    high: float = 1.0

    RULES: ClassVar = (Rule(("low", "high"), lambda low, high: low < high, "low must be below high"),)


class PaddingMode(StrEnum):
    constant = "constant"  # zeros
    reflect = "reflect"  # the image mirrored at its border


@dataclass
class RandomCropOptions(FieldOptions):
    padding: int = limit(4, ge=0)  # pixels added on each side before the crop; below the image size
    padding_mode: PaddingMode = PaddingMode.constant


@dataclass
class FlipOptions(FieldOptions):
    p: float = limit(0.5, ge=0, le=1)  # the chance that an image is mirrored
    alternate: bool = False  # instead: mirrored in every other epoch (Jordan 2024)


@dataclass
class ColorJitterOptions(FieldOptions):
    brightness: float = limit(0.2, ge=0, lt=1)  # factors uniform in [1 - b, 1 + b]
    contrast: float = limit(0.2, ge=0, lt=1)


TRANSFORM_OPTIONS: dict[str, type] = {
    "standardize": FieldOptions,  # the training images' channel statistics
    "rescale": RescaleOptions,
    "to_unit": FieldOptions,
    "color_jitter": ColorJitterOptions,
    "random_crop": RandomCropOptions,
    "hflip": FlipOptions,
}
