"""The one loader: minibatches of named tensor fields that already sit on the training device.

No worker processes and no per-sample Python: rows are gathered a chunk at a time with one
``index_select`` per field, each batch is a view into the chunk, and per-batch transforms are
batched tensor functions. Each epoch's order is a permutation seeded by (seed, epoch), so any step
of any epoch is reproduced exactly when a run resumes, and it is sharded by rank for data-parallel
training: rank r of w takes every w-th index of the permutation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch

from dlfp.data.images import Split
from dlfp.data.transforms import Transform, build_transforms
from dlfp.errors import DlfpError

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from dlfp.data import ImageData

Batch = dict[str, torch.Tensor]


class Loader:
    CHUNK_ROWS = 2048  # rows gathered at once (whole batches, at least one)

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool | None = None,
        transforms: Sequence[Transform] = (),
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} must lie in [0, world_size={world_size})")
        self.fields = split.fields
        self.rows = len(split) // world_size * world_size  # equal shards: the remainder is dropped
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.drop_last = shuffle if drop_last is None else drop_last
        self.transforms = list(transforms)
        rowwise = 0  # the leading row-by-row transforms run once per chunk, the rest once per batch
        while rowwise < len(self.transforms) and self.transforms[rowwise].rowwise:
            rowwise += 1
        self.chunk_transforms, self.batch_transforms = self.transforms[:rowwise], self.transforms[rowwise:]
        self.random = any(t.random for t in self.batch_transforms)
        self.with_index = any(t.needs_index for t in self.transforms)
        self.device = next(iter(self.fields.values())).device
        if self.drop_last and self.shard_rows < batch_size:
            raise DlfpError(f"a batch of {batch_size} is larger than the {self.shard_rows} training "
                            "examples; lower train.batch_size")

    @property
    def shard_rows(self) -> int:
        return self.rows // self.world_size

    def __len__(self) -> int:
        n = self.shard_rows
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def shuffles(self) -> bool:
        """Whether epochs are permuted. A split that is one batch in one shard keeps its stored
        order (shuffling it would change nothing but the rounding of the batch's sums)."""
        return self.shuffle and not (self.world_size == 1 and self.rows <= self.batch_size)

    def order(self, epoch: int) -> torch.Tensor:
        """This rank's row indices for ``epoch``."""
        if self.shuffles:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(len(next(iter(self.fields.values()))), generator=gen)
        else:
            order = torch.arange(self.rows)
        return order[: self.rows][self.rank :: self.world_size].to(self.device)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """The batches of one epoch, beginning at batch index ``start``.

        Rows are gathered, and row-by-row transforms applied, about ``CHUNK_ROWS`` at a time: one
        large operation instead of many small ones, whose fixed cost per call would rival a small
        model's step.
        """
        n, bs = len(self), self.batch_size
        in_place = not self.shuffles and self.world_size == 1  # rows in stored order: views, no copy
        order = None if in_place else self.order(epoch)
        chunk = max(1, self.CHUNK_ROWS // bs)
        for transform in self.transforms:
            transform.set_epoch(epoch)
        for first in range(start, n, chunk):
            last = min(first + chunk, n)
            if in_place:
                gathered = {k: v[first * bs : last * bs] for k, v in self.fields.items()}
                idx = torch.arange(first * bs, last * bs, device=self.device) if self.with_index else None
            else:  # index_select, not x[idx]: advanced indexing is far slower on uint8 images on CPU
                idx = order[first * bs : last * bs]
                gathered = {k: v.index_select(0, idx) for k, v in self.fields.items()}
            if self.with_index:  # each row's stored position, for transforms that key on it
                gathered["index"] = idx
            for transform in self.chunk_transforms:
                gathered = transform(gathered, None)
            for i in range(first, last):
                rows = slice((i - first) * bs, (i - first + 1) * bs)
                batch = {k: v[rows] for k, v in gathered.items()}
                yield self._transform(batch, epoch, i)

    def _transform(self, batch: Batch, epoch: int, index: int) -> Batch:
        gen = None
        if self.random:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(((self.seed * 1_000_003 + epoch) * 100_003 + index) * 1_009 + self.rank)
        for transform in self.batch_transforms:
            batch = transform(batch, gen)
        return batch


def transformed(split: Split, transforms: Sequence[Transform]) -> Batch:
    """Every row of ``split`` as one batch through ``transforms`` (the model's view of a fixed set)."""
    return next(Loader(split, len(split), shuffle=False, transforms=transforms).epoch(0))


def image_loaders(data: ImageData, cfg: DictConfig, device: torch.device | str, pixels: bool = False,
                  rank: int = 0, world_size: int = 1) -> tuple[Loader, dict[str, Loader]]:
    """The shuffled training loader (augmentation, then the transforms; only the augmentation
    when ``pixels``, for attacks on pixels; this rank's shard under torchrun) and one loader per
    evaluation split (the transforms only), with the splits moved to ``device``: every image task's
    loaders (the torch classifier, the NumPy network)."""
    transforms = build_transforms(cfg.dataset.transforms, data)
    augment = build_transforms(cfg.dataset.augment, data, key="dataset.augment")
    train = Loader(data.train.to(device), cfg.train.batch_size, shuffle=True, seed=cfg.seed,
                   transforms=augment + ([] if pixels else transforms), rank=rank, world_size=world_size)
    evals = {split: Loader(s.to(device), cfg.train.eval_batch_size, shuffle=False, transforms=transforms)
             for split, s in data.eval_splits.items()}
    return train, evals
