"""dataset=: the loaders of real and generated data, and the per-batch transforms of the images."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from omegaconf import II

from dlfp.config.checks import SEED, Rule, choices, limit
from dlfp.config.transforms import TRANSFORM_OPTIONS


@dataclass
class ImageDatasetConfig:
    """The per-batch transforms of an image dataset's batches (``dataset.transforms=[standardize]``,
    ``dataset.augment=[hflip]``): the batch loaders apply them (dlfp/data/loader.py); the dataset's
    own loader, its ``_target_``, is built without them (``load_dataset``)."""

    transforms: list[Any] = choices(TRANSFORM_OPTIONS, "transform")  # every batch of every split
    augment: list[Any] = choices(TRANSFORM_OPTIONS, "transform")  # training batches only, before those


@dataclass
class MNISTConfig(ImageDatasetConfig):
    _target_: str = "dlfp.data.mnist.load_mnist"
    name: str = "mnist"  # mnist | fashion_mnist: the folder and torchvision class to use
    root: str = "${paths.data_dir}"
    download: bool = True
    val_size: int = limit(5000, ge=1)  # held out of the 60,000 training images; the test set stays apart
    split_seed: int = limit(0, **SEED)
    train_size: int | None = limit(None, ge=1)  # a stratified subset of the training split; null = all of it
    subset_seed: int = limit(II("seed"), **SEED)  # chooses that subset (the run seed unless set)


@dataclass
class MNIST5kConfig(ImageDatasetConfig):
    _target_: str = "dlfp.data.mnist5k.load_mnist5k"
    name: str = "mnist5k"
    val_size: int = limit(1000, ge=1)  # stratified: val_size / 10 per class
    split_seed: int = limit(0, **SEED)
    train_size: int | None = limit(None, ge=1)  # a stratified subset of the training split; null = all of it
    subset_seed: int = limit(II("seed"), **SEED)  # chooses that subset (the run seed unless set)


@dataclass
class CIFAR10Config(ImageDatasetConfig):
    _target_: str = "dlfp.data.cifar.load_cifar10"
    root: str = "${paths.data_dir}"  # holds cifar-10-batches-py, cifar10-jpeg.tar.gz or cifar10/
    download: bool = True  # through torchvision (md5-checked) when no source is found
    val_size: int = limit(5000, ge=0)  # held out of the 50,000 training images, stratified; 0: none
    split_seed: int = limit(0, **SEED)
    train_size: int | None = limit(None, ge=1)  # a stratified subset of the training split; null = all of it
    subset_seed: int = limit(II("seed"), **SEED)


@dataclass
class CIFARSyntheticConfig(ImageDatasetConfig):
    _target_: str = "dlfp.data.cifar.load_cifar_synthetic"
    n_train: int = limit(2000, ge=10)  # generated 32x32 RGB images, ten classes
    val_size: int = limit(500, ge=0)  # generated validation images (0: none), as cifar10's hold-out
    n_test: int = limit(500, ge=10)
    seed: int = limit(0, **SEED)  # draws the images (not the run seed: the data stay fixed across runs)
    train_size: int | None = limit(None, ge=1)
    subset_seed: int = limit(II("seed"), **SEED)


class RegressionTarget(StrEnum):
    sin_10pi_x4 = "sin_10pi_x4"  # f*(x) = sin(10 pi x^4)


@dataclass
class SinRegressionConfig:
    _target_: str = "dlfp.data.regression1d.make_regression1d"
    target: RegressionTarget = RegressionTarget.sin_10pi_x4
    n: int = limit(100, ge=1)  # training points
    noise_std: float = limit(0.0, ge=0)  # std of Gaussian noise added to the training targets
    x_low: float = 0.0  # training inputs are uniform on [x_low, x_high]: the data's support
    x_high: float = 1.0
    seed: int = limit(0, **SEED)  # draws the inputs and the noise (the experiment sets it to ${seed})

    RULES: ClassVar = (Rule(("x_low", "x_high"), lambda low, high: low < high, "x_low must be below x_high"),)


# the keys of an image dataset's config that name per-batch transforms, which the batch loaders read
# and the dataset's own loader (its _target_) does not take
TRANSFORM_KEYS = frozenset(f.name for f in dataclasses.fields(ImageDatasetConfig))

SCHEMAS = {"dataset": {"mnist": MNISTConfig, "mnist5k": MNIST5kConfig, "cifar10": CIFAR10Config,
                       "cifar_synthetic": CIFARSyntheticConfig, "sin_regression": SinRegressionConfig}}
