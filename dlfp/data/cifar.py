"""CIFAR-10 from torchvision's ``cifar-10-batches-py`` folder or from an ImageFolder tree (a folder
or a ``.tar.gz``: ``train/<class>/*.{png,jpg}``, ``test/<class>/...``), decoded once into a uint8
cache beside the source; and ``cifar_synthetic``, a generated stand-in for tests and smoke runs.

An archive is read to its end (gzip checks its CRC), and what is decoded must be what the layout
promises: uint8 32x32 RGB images, labels 0..9, every class in both splits; a source that is not is
refused with one line naming it. The cache (``.dlfp-cache-<name>-<checksum>-<train>-<test>.npz``:
the source's checksum and the image counts) is written atomically and put through the same checks
when read: a changed source gets a new cache, a cache that fails a check is rebuilt with a warning,
never trusted.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import io
import logging
import os
import pickle
import shutil
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dlfp.data.download import download_folder
from dlfp.data.images import ImageData, Split, image_data, stratified_holdout
from dlfp.data.validate import check_labelled_images
from dlfp.errors import DlfpError

log = logging.getLogger(__name__)

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
BATCHES = "cifar-10-batches-py"
ARCHIVES = ("cifar10-jpeg.tar.gz", "cifar10.tar.gz")  # ImageFolder trees as archives
FOLDERS = ("cifar10", "cifar10-jpeg")  # ImageFolder trees as folders
SHAPE = (3, 32, 32)


def load_cifar10(root: str = "data", download: bool = True, val_size: int = 5000, split_seed: int = 0,
                 train_size: int | None = None, subset_seed: int = 0) -> ImageData:
    """50,000 training images less a stratified validation hold-out of ``val_size`` (none when 0,
    as the fast recipe trains on all of them), and the 10,000 test images."""
    root_path = Path(root).expanduser().resolve()
    source = find_source(root_path)
    if source is None:
        source = _download_or_explain(root_path, download)
    (train_x, train_y), (test_x, test_y) = cached(source, _decode)
    if not 0 <= val_size < len(train_y):
        raise DlfpError(f"dataset.val_size={val_size} must be between 0 and {len(train_y) - 1}")
    split = lambda x, y: Split(x=torch.from_numpy(x), y=torch.from_numpy(y.astype(np.int64)))  # noqa: E731
    keep, held = stratified_holdout(train_y, val_size, split_seed) if val_size else (slice(None), None)
    return image_data("cifar10", train=split(train_x[keep], train_y[keep]),
                      val=split(train_x[held], train_y[held]) if val_size else None,
                      test=split(test_x, test_y),
                      classes=list(CLASSES), train_size=train_size, subset_seed=subset_seed)


def find_source(root: Path) -> Path | None:
    """The first of: ``<root>/cifar-10-batches-py``, an ImageFolder archive, an ImageFolder folder."""
    candidates = [root / BATCHES, *(root / a for a in ARCHIVES), *(root / f for f in FOLDERS)]
    return next((c for c in candidates if c.exists()), None)


Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def cached(source: Path, decode: Callable[[Path], Arrays]) -> Arrays:
    """``decode(source)``, or the cache of it beside the source when the source is unchanged."""
    stem = f".dlfp-cache-{source.name}-{_checksum(source)[:16]}"
    for cache in sorted(source.parent.glob(f"{glob.escape(stem)}*.npz")):
        arrays = _read_cache(cache, stem)
        if arrays is not None:
            _log_counts(arrays, cache)
            return arrays
    log.info("decoding %s once into a cache beside it", source)
    arrays = decode(source)
    check_arrays(arrays, str(source), "replace it with an intact copy of CIFAR-10")
    cache = source.parent / _cache_name(stem, arrays)
    _log_counts(arrays, source)
    tmp = cache.with_name(cache.name + ".tmp")
    try:
        with tmp.open("wb") as f:
            np.savez(f, train_x=arrays[0][0], train_y=arrays[0][1], test_x=arrays[1][0], test_y=arrays[1][1])
        os.replace(tmp, cache)
    except OSError as e:  # a read-only data folder: use the decoded arrays without a cache
        tmp.unlink(missing_ok=True)
        log.warning("cannot write the cache %s (%s); decoding again next time", cache, e.strerror or e)
    return arrays


def _cache_name(stem: str, arrays: Arrays) -> str:
    """The cache's name states the counts it holds, so a partial set shows in a directory listing."""
    (_, train_y), (_, test_y) = arrays
    return f"{stem}-{len(train_y)}-{len(test_y)}.npz"


def _read_cache(cache: Path, stem: str) -> Arrays | None:
    """The cache's arrays if they pass every check of a decoded source and match its name; else
    None, with a warning, the cache removed (so it is not read again)."""
    try:
        with np.load(cache, allow_pickle=False) as saved:
            arrays = ((saved["train_x"], saved["train_y"]), (saved["test_x"], saved["test_y"]))
        check_arrays(arrays, str(cache), "rebuilding it")
        if cache.name != _cache_name(stem, arrays):
            raise DlfpError(f"{cache}: {len(arrays[0][1])} training and {len(arrays[1][1])} test images, "
                            f"not the counts its name states ({_cache_name(stem, arrays)}); rebuilding it")
        return arrays
    except DlfpError as e:
        log.warning("%s", e)
    except Exception as e:  # noqa: BLE001 - not a readable .npz of these arrays: rebuilt, never trusted
        log.warning("%s is not a readable cache (%s: %s); rebuilding it", cache, type(e).__name__, e)
    with contextlib.suppress(OSError):  # a read-only data folder: decoded again each time
        cache.unlink()
    return None


def check_arrays(arrays: Arrays, source: str, fix: str) -> None:
    """What every decoded source and every cache must hold: uint8 images (N, 3, 32, 32) (so pixels
    are 0..255), integer labels 0..9, and every class in both splits: a source read in part (a
    damaged archive, a folder missing a class) lacks some, and would train on what is left."""
    for (x, y), split in zip(arrays, ("train", "test")):
        where = f"{source} ({split})"
        if x.dtype != np.uint8 or not np.issubdtype(y.dtype, np.integer):
            raise DlfpError(f"{where}: images of dtype {x.dtype} and labels of dtype {y.dtype}, expected "
                            f"uint8 images and integer labels; {fix}")
        check_labelled_images(x, y, image_shape=SHAPE, classes=len(CLASSES), source=where, fix=fix)
        missing = [CLASSES[c] for c in np.flatnonzero(np.bincount(y, minlength=len(CLASSES)) == 0)]
        if missing:
            raise DlfpError(f"{where}: {len(y):,} images, none of class {', '.join(missing)} (CIFAR-10 has "
                            f"{len(CLASSES)} classes in each split); {fix}")


def _log_counts(arrays: Arrays, source: Path) -> None:
    (_, train_y), (_, test_y) = arrays
    log.info("CIFAR-10 from %s: %s training and %s test images, all %d classes in each",
             source, f"{len(train_y):,}", f"{len(test_y):,}", len(CLASSES))


def _checksum(source: Path) -> str:
    """sha256 over the source's files (names and bytes), so any change gives another cache."""
    digest = hashlib.sha256()
    files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
    for path in files:
        digest.update(str(path.relative_to(source.parent)).encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _decode(source: Path) -> Arrays:
    if source.name == BATCHES:
        return _read_batches(source)
    return _read_image_folder(source)


class _ArraysOnly(pickle.Unpickler):
    """Unpickles the CIFAR python batches (dicts of bytes, lists and NumPy arrays) and nothing else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def _read_batches(folder: Path) -> Arrays:
    def read(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for name in names:
            path = folder / name
            try:
                with path.open("rb") as f:
                    batch = _ArraysOnly(f, encoding="bytes").load()
                xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, *SHAPE))
                ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
            except FileNotFoundError:
                raise DlfpError(f"{path} is missing from {folder}; download CIFAR-10 again "
                                "(delete the folder, keep dataset.download=true)") from None
            except Exception as e:  # noqa: BLE001 - truncated, not a pickle, wrong content
                raise DlfpError(f"{path} is damaged ({type(e).__name__}: {e}); delete {folder} and "
                                "download CIFAR-10 again") from None
        return np.concatenate(xs), np.concatenate(ys)

    return read([f"data_batch_{i}" for i in range(1, 6)]), read(["test_batch"])


def _read_image_folder(source: Path) -> Arrays:
    """``train/<class>/*`` and ``test/<class>/*`` image files, from a folder or a ``.tar.gz``."""
    members = _image_files(source)
    unexpected = sorted({cls for split, cls, _ in members if cls not in CLASSES} |
                        {split for split, _, _ in members if split not in ("train", "test")})
    if unexpected:
        raise DlfpError(f"{source} has folders that are not CIFAR-10's splits or classes: "
                        f"{', '.join(unexpected)}; expected train/ and test/ holding {', '.join(CLASSES)}")
    from PIL import Image  # Pillow, a dependency of matplotlib and torchvision

    out = {}
    for split in ("train", "test"):
        files = sorted((cls, name, read) for s, cls, (name, read) in members if s == split)
        if not files:
            raise DlfpError(f"{source} has no {split}/ images; expected {split}/<class>/*.png or *.jpg")
        x = np.empty((len(files), *SHAPE), dtype=np.uint8)
        for i, (_, name, read) in enumerate(files):
            try:
                with Image.open(io.BytesIO(read())) as opened:
                    image = np.asarray(opened.convert("RGB")).transpose(2, 0, 1)
            except Exception as e:  # noqa: BLE001 - a truncated or corrupt image file
                raise DlfpError(f"{name} in {source} is not a readable image ({e}); replace it") from None
            if image.shape != SHAPE:
                raise DlfpError(f"{name} in {source} is {image.shape}, not a 32x32 RGB image")
            x[i] = image
        out[split] = (x, np.array([CLASSES.index(cls) for cls, _, _ in files], dtype=np.int64))
    return out["train"], out["test"]


def _image_files(source: Path) -> list[tuple[str, str, tuple[str, object]]]:
    """(split, class, (name, read bytes)) for every image file under ``source``."""
    suffixes = (".png", ".jpg", ".jpeg")
    if source.is_dir():
        return [(p.parent.parent.name, p.parent.name, (str(p), p.read_bytes))
                for p in source.glob("*/*/*") if p.suffix.lower() in suffixes]
    blobs = _read_archive(source, suffixes)
    files = []
    for name, blob in blobs.items():
        parts = Path(name).parts[-3:]
        if len(parts) == 3:
            files.append((parts[0], parts[1], (name, lambda blob=blob: blob)))
    return files


def _read_archive(source: Path, suffixes: tuple[str, ...]) -> dict[str, bytes]:
    """The files of a ``.tar.gz`` with these suffixes, read in one pass to the end of the stream.
    tarfile takes a damaged member header for the end of the archive, so what follows its last
    member must be the end-of-archive zeros; reading to the end makes gzip check the CRC and length
    of all of it (a truncated stream ends early, a damaged one fails its CRC)."""
    try:
        with gzip.open(source) as stream, tarfile.open(fileobj=stream, mode="r:") as tar:
            blobs = {m.name: tar.extractfile(m).read() for m in tar
                     if m.isfile() and Path(m.name).suffix.lower() in suffixes}
            if any(block.strip(b"\0") for block in iter(lambda: stream.read(1 << 20), b"")):
                raise tarfile.ReadError(f"a damaged member header after {len(tar.members)} members")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DlfpError(f"{source} is a damaged or truncated archive ({e}); replace it with an intact "
                        "copy") from None
    return blobs


def _download_or_explain(root: Path, download: bool) -> Path:
    reason = "dataset.download=false"
    if download:
        try:
            return _download(root)
        except Exception as e:  # noqa: BLE001 - any failure means: explain and stop
            reason = f"the download failed ({type(e).__name__}: {e})"
    raise DlfpError(
        f"CIFAR-10 not found under {root} and {reason}. Accepted: {root / BATCHES} (torchvision's "
        f"python batches), an ImageFolder archive {' or '.join(str(root / a) for a in ARCHIVES)}, or a "
        f"folder {root / FOLDERS[0]} holding train/<class>/*.png|jpg and test/<class>/...; point "
        "paths.data_dir (or DLFP_DATA) at the folder that holds one, or run offline with "
        "dataset=cifar_synthetic (generated images)."
    )


def _download(root: Path) -> Path:
    """torchvision's download (with its md5 check) into a temporary folder, then moved into place."""
    import torchvision

    with download_folder(root, "cifar10") as tmp:
        torchvision.datasets.CIFAR10(root=str(tmp), train=True, download=True)
        shutil.move(str(tmp / BATCHES), root / BATCHES)
    return root / BATCHES


def load_cifar_synthetic(n_train: int = 2000, val_size: int = 500, n_test: int = 500, seed: int = 0,
                         train_size: int | None = None, subset_seed: int = 0) -> ImageData:
    """Generated 32x32 RGB images of ten classes, for tests and smoke runs: each class is a
    sinusoidal grating of its own orientation and frequency in its own colour, at a random phase,
    over noise. Learnable, nothing like CIFAR-10's photographs. ``val_size`` 0: no validation split."""
    rng = np.random.default_rng(seed)

    def make(n: int) -> Split:
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        yy, xx = np.mgrid[0:32, 0:32] / 32.0
        angle = labels[:, None, None] * np.pi / 10
        freq = 2 + labels[:, None, None] % 3
        phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
        wave = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
        colour = np.stack([(labels * k % 10) / 9 for k in (1, 3, 7)], axis=1)[:, :, None, None]
        images = 128 + 100 * wave[:, None] * (0.3 + 0.7 * colour) + rng.normal(0, 20, (n, 3, 32, 32))
        x = np.clip(images, 0, 255).astype(np.uint8)
        return Split(x=torch.from_numpy(x), y=torch.from_numpy(labels.astype(np.int64)))

    train, val, test = make(n_train), make(val_size) if val_size else None, make(n_test)
    return image_data("cifar_synthetic (generated)", train=train, val=val, test=test,
                      classes=[f"synthetic_{c}" for c in range(10)], train_size=train_size,
                      subset_seed=subset_seed)



