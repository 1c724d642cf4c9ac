"""Per-batch transforms: batched tensor functions on a batch's named fields, chosen by name from
config (``dataset.transforms`` for every batch; ``dataset.augment`` for training batches only,
before the transforms, as torchvision pipelines augment before they normalise).

Images are uint8 on 0..255 or float on 0..1 (``to_unit`` turns the first into the second, which
colour augmentations need); ``standardize`` and ``rescale`` accept either.

A transform takes the batch dict and a generator (seeded per batch by the loader, so augmented
batches are reproduced exactly on resume) and returns the new batch. ``random`` says whether it
draws from the generator; ``rowwise`` that it maps each row on its own without randomness, so the
loader may apply it to a whole chunk of batches at once (fewer, larger operations).

Each transform's options, their types, ranges and defaults are declared in
dlfp/config/transforms.py and checked with the rest of the config before any data loads; what
needs the data (the crop's padding against the image size) is checked when the transforms are built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from dlfp.config.checks import read_entry
from dlfp.config.transforms import (
    TRANSFORM_OPTIONS,
    ColorJitterOptions,
    FieldOptions,
    FlipOptions,
    RandomCropOptions,
    RescaleOptions,
)
from dlfp.errors import DlfpError

Batch = dict[str, torch.Tensor]


class Transform:
    random = False
    rowwise = False
    needs_index = False  # reads each row's stored position (field "index", which the loader adds)

    def set_epoch(self, epoch: int) -> None:
        """Called by the loader before each epoch's batches (the alternating flip uses it)."""

    def __call__(self, batch: Batch, gen: torch.Generator | None) -> Batch:
        raise NotImplementedError


def _unit_scale(x: torch.Tensor) -> float:
    """What multiplies ``x`` onto 0..1: 1/255 for uint8 images, 1 for float images."""
    return 1.0 / 255.0 if x.dtype == torch.uint8 else 1.0


def unit_pixels(x: torch.Tensor) -> torch.Tensor:
    """Images as float pixels on 0..1 (uint8 divided by 255; float images as they are)."""
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


class Standardize(Transform):
    """images -> (x on 0..1 - mean) / std per channel, as one fused multiply-add."""

    rowwise = True

    def __init__(self, mean: Sequence[float], std: Sequence[float], field: str = FieldOptions.field) -> None:
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self.shift = -torch.tensor(mean).view(1, -1, 1, 1) / self.std
        self.field = field
        self._scales: dict[tuple, torch.Tensor] = {}

    def __call__(self, batch: Batch, gen: torch.Generator | None) -> Batch:
        x = batch[self.field]
        key = (x.dtype, x.device)
        if key not in self._scales:  # 1 / (255 std) for uint8, 1 / std for float
            self.shift = self.shift.to(x.device)
            self._scales[key] = (1.0 / (self.std * (255.0 if x.dtype == torch.uint8 else 1.0))).to(x.device)
        return {**batch, self.field: x.to(torch.float32, copy=True).mul_(self._scales[key]).add_(self.shift)}


class ToUnit(Transform):
    """uint8 images 0..255 -> float 0..1 (torchvision's ToDtype(float32, scale=True))."""

    rowwise = True

    def __init__(self, field: str = FieldOptions.field) -> None:
        self.field = field

    def __call__(self, batch: Batch, gen: torch.Generator | None) -> Batch:
        x = batch[self.field]
        return {**batch, self.field: x.to(torch.float32, copy=True).mul_(_unit_scale(x))}


class Rescale(Transform):
    """images -> float in [low, high] (the DDPM's [-1, 1])."""

    rowwise = True

    def __init__(self, low: float = RescaleOptions.low, high: float = RescaleOptions.high,
                 field: str = FieldOptions.field) -> None:
        self.span, self.low, self.field = high - low, low, field

    def __call__(self, batch: Batch, gen: torch.Generator | None) -> Batch:
        x = batch[self.field]
        scale = self.span / 255.0 if x.dtype == torch.uint8 else self.span
        return {**batch, self.field: x.to(torch.float32, copy=True).mul_(scale).add_(self.low)}


class RandomCrop(Transform):
    """Pad by ``padding`` pixels (zeros, or ``padding_mode: reflect``), then crop the original size
    at a random offset per image: torchvision's RandomCrop(size, padding, padding_mode)."""

    random = True

    def __init__(self, padding: int = RandomCropOptions.padding,
                 padding_mode: str = RandomCropOptions.padding_mode.value,
                 field: str = FieldOptions.field) -> None:
        self.padding, self.mode, self.field = padding, padding_mode, field

    def params(self, n: int, gen: torch.Generator | None, device: torch.device) -> torch.Tensor:
        """Per image: the (row, column) offset of the crop in the padded image, (2, n)."""
        return torch.randint(0, 2 * self.padding + 1, (2, n), generator=gen, device=device)

    def apply(self, x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p = self.padding
        padded = F.pad(x if self.mode == "constant" else x.float(), (p, p, p, p), mode=self.mode).to(x.dtype)
        dy, dx = offsets
        rows = (torch.arange(h, device=x.device) + dy[:, None])[:, None, :, None]
        cols = (torch.arange(w, device=x.device) + dx[:, None])[:, None, None, :]
        images = torch.arange(n, device=x.device)[:, None, None, None]
        channels = torch.arange(c, device=x.device)[None, :, None, None]
        return padded[images, channels, rows, cols]

    def __call__(self, batch: Batch, gen: torch.Generator | None) -> Batch:
        x = batch[self.field]
        return {**batch, self.field: self.apply(x, self.params(len(x), gen, x.device))}


class HorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``; or, with ``alternate``, the
    derandomised flip of Jordan 2024: each image is mirrored in every other epoch, starting
    (epoch 0) mirrored or not by a fixed pseudo-random bit of its stored position, so that every
    two consecutive epochs show both versions of every image."""

    random = True

    def __init__(self, p: float = FlipOptions.p, alternate: bool = FlipOptions.alternate,
                 field: str = FieldOptions.field) -> None:
        self.p, self.alternate, self.field = p, alternate, field
        self.needs_index, self.epoch = self.alternate, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def params(self, n: int, gen: torch.Generator | None, device: torch.device) -> torch.Tensor:
        """Per image: whether it is mirrored."""
        return torch.rand(n, generator=gen, device=device) < self.p

    def alternating(self, index: torch.Tensor) -> torch.Tensor:
        """Per image: its first-epoch bit (a multiplicative hash of the position), flipped in odd epochs."""
        first = ((index * 2654435761) >> 16) & 1
        return (first ^ (self.epoch % 2)).bool()

    @staticmethod
    def apply(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        return torch.where(flip[:, None, None, None], x.flip(-1), x)

    def __call__(self, batch: Batch, gen: torch.Generator | None) -> Batch:
        x = batch[self.field]
        flip = self.alternating(batch["index"]) if self.alternate else self.params(len(x), gen, x.device)
        return {**batch, self.field: self.apply(x, flip)}


class ColorJitter(Transform):
    """torchvision's ColorJitter(brightness, contrast) on float images 0..1, each image with its
    own factors (uniform in [1 - b, 1 + b] and [1 - c, 1 + c]) and its own order of the two."""

    random = True

    def __init__(self, brightness: float = ColorJitterOptions.brightness,
                 contrast: float = ColorJitterOptions.contrast, field: str = FieldOptions.field) -> None:
        self.brightness, self.contrast, self.field = brightness, contrast, field

    def params(self, n: int, gen: torch.Generator | None, device: torch.device
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per image: brightness factor, contrast factor, and whether brightness comes first."""
        u = torch.rand(3, n, generator=gen, device=device)
        b = 1 - self.brightness + 2 * self.brightness * u[0]
        c = 1 - self.contrast + 2 * self.contrast * u[1]
        return b, c, u[2] < 0.5

    @staticmethod
    def apply(x: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
              brightness_first: torch.Tensor) -> torch.Tensor:
        shape = (-1, 1, 1, 1)

        def brightness(img: torch.Tensor) -> torch.Tensor:
            return (img * b.view(shape)).clamp_(0, 1)

        def contrast(img: torch.Tensor) -> torch.Tensor:  # blend with the mean of the grey image
            grey = (0.2989 * img[:, 0] + 0.587 * img[:, 1] + 0.114 * img[:, 2]).mean(dim=(1, 2))
            return (img * c.view(shape) + grey.view(shape) * (1 - c.view(shape))).clamp_(0, 1)

        return torch.where(brightness_first.view(shape), contrast(brightness(x)), brightness(contrast(x)))

    def __call__(self, batch: Batch, gen: torch.Generator | None) -> Batch:
        x = batch[self.field]
        if x.dtype == torch.uint8:
            raise DlfpError("color_jitter needs float images on 0..1: "
                            "put to_unit before it in dataset.augment")
        return {**batch, self.field: self.apply(x, *self.params(len(x), gen, x.device))}


def _standardize(data: Any, o: FieldOptions, at: str) -> Transform:
    if getattr(data, "mean", None) is None:
        raise DlfpError(f"{at}: standardize needs a dataset with channel statistics (images)")
    return Standardize(data.mean, data.std, o.field)


def _random_crop(data: Any, o: RandomCropOptions, at: str) -> Transform:
    shape = _image_shape(data, o.field, at)
    if shape and o.padding >= min(shape[-2:]):
        raise DlfpError(f"{at}.padding={o.padding} must be below the image size, {shape[-2]}x{shape[-1]} in "
                        f"dataset {data.name}, or a crop can miss the image entirely; pad by a few pixels "
                        "(4 for 32x32 images)")
    return RandomCrop(o.padding, o.padding_mode.value, o.field)


def _color_jitter(data: Any, o: ColorJitterOptions, at: str) -> Transform:
    shape = _image_shape(data, o.field, at)
    if shape and shape[0] != 3:
        raise DlfpError(f"{at}: color_jitter needs colour images (3 channels; its contrast is against the "
                        f"grey image), but dataset {data.name}'s have {shape[0]}; remove it")
    return ColorJitter(o.brightness, o.contrast, o.field)


# name -> builder(data or None, options of dlfp/config/transforms.py, the entry's config key)
TRANSFORMS: dict[str, Callable[[Any, Any, str], Transform]] = {
    "standardize": _standardize,
    "rescale": lambda data, o, at: Rescale(o.low, o.high, o.field),
    "to_unit": lambda data, o, at: ToUnit(o.field),
    "color_jitter": _color_jitter,
    "random_crop": _random_crop,
    "hflip": lambda data, o, at: HorizontalFlip(o.p, o.alternate, o.field),
}


def build_transforms(entries: Sequence[Any], data: Any = None,
                     key: str = "dataset.transforms") -> list[Transform]:
    """Entries are a name (``standardize``) or a mapping with ``name`` and options
    (``{name: random_crop, padding: 4}``), read as the config check reads them; ``data`` (the
    run's ImageData, or None) lets each check what needs the images."""
    built = []
    for i, entry in enumerate(entries):
        at = f"{key}[{i}]"
        name, options = read_entry(entry, TRANSFORM_OPTIONS, at, "transform")
        _image_shape(data, options.field, at)
        built.append(TRANSFORMS[name](data, options, at))
    return built


def _image_shape(data: Any, field: str, at: str) -> tuple[int, ...]:
    """(C, H, W) of the training images in batch field ``field`` (empty without data); an error
    when the dataset's batches have no such image field."""
    fields = getattr(getattr(data, "train", None), "fields", None)
    if fields is None:
        return ()
    images = {name: t for name, t in fields.items() if t.dim() == 4}
    if field not in images:
        raise DlfpError(f"{at}.field={field} must name an image field of dataset {data.name}'s batches "
                        f"({', '.join(images) or 'it has none'}); remove it to transform x")
    return tuple(images[field].shape[1:])
