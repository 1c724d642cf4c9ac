"""Minibatches straight from tensors that already sit on the training device.

No worker processes and no per-sample Python: a batch is one index gather plus one fused
normalisation. Shuffling is a permutation seeded by (seed, epoch), so any step of any epoch can be
reproduced exactly when a run resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from dlfp.data.images import Split

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class InMemoryLoader:
    CHUNK_IMAGES = 2048  # images gathered and normalised at once (whole batches, at least one)

    def __init__(
        self,
        split: Split,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        *,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool | None = None,
        augment: Augment | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.x, self.y = split.x, split.y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = shuffle if drop_last is None else drop_last
        self.augment = augment
        device = self.x.device
        std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)  # x_norm = x_uint8 * scale + shift
        self._shift = -mean_t / std_t
        if self.drop_last and len(self.y) < batch_size:
            raise ValueError(f"{len(self.y)} examples cannot fill one batch of {batch_size}")

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of one epoch, beginning at batch index ``start``.

        Images are gathered and normalised about ``CHUNK_IMAGES`` at a time (one large gather
        instead of many small ones, whose fixed cost per call would rival a small model's step,
        yet small enough to stay in cache); each batch is then a view into the chunk.
        """
        n = len(self)
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(len(self.y), generator=gen).to(self.x.device)
        else:
            order = torch.arange(len(self.y), device=self.x.device)
        bs = self.batch_size
        chunk = max(1, self.CHUNK_IMAGES // bs)
        for first in range(start, n, chunk):
            last = min(first + chunk, n)
            idx = order[first * bs : last * bs]
            # index_select, not x[idx]: advanced indexing is far slower on uint8 images on CPU
            xs = self.x.index_select(0, idx).float().mul_(self._scale).add_(self._shift)
            ys = self.y.index_select(0, idx)
            for i in range(first, last):
                sl = slice((i - first) * bs, (i - first + 1) * bs)
                xb = xs[sl]
                if self.augment is not None:
                    gen = torch.Generator(device=self.x.device)
                    gen.manual_seed((self.seed * 1_000_003 + epoch) * 100_003 + i)
                    xb = self.augment(xb, gen)
                yield xb, ys[sl]
