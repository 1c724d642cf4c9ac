"""L-infinity gradient attacks on a classifier, in pixel space [0, 1]: one projected signed-gradient
loop that is FGSM (one step of size eps), iterative FGSM / BIM (k steps of size alpha from the
clean image) or PGD (the same from a uniform random point of the eps-ball; Madry et al. 2018).

The model takes pixel-space images (``PixelModel`` puts a classifier's input transforms inside
it), so the eps-ball and the [0, 1] box are the literature's. Gradients are float32: callers run
the model in eval mode without autocast (adversarial training, ``AdversarialBatches``, runs it
as training does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlfp.data.transforms import Transform, unit_pixels
from dlfp.engine.progress import Progress
from dlfp.errors import DlfpError

Attack = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class PixelModel(nn.Module):
    """A classifier on pixel-space images: its deterministic input transforms (standardize), then it."""

    def __init__(self, net: nn.Module, transforms: list[Transform]) -> None:
        super().__init__()
        random = [type(t).__name__ for t in transforms if t.random]
        if random:
            raise DlfpError(f"attacks need deterministic input transforms; dataset.transforms has {random}")
        self.net, self.transforms = net, transforms

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel-space images as the classifier takes them: through its input transforms."""
        batch = {"x": x}
        for transform in self.transforms:
            batch = transform(batch, None)
        return batch["x"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.inputs(x))


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
        random_start: bool = False, generator: torch.Generator | None = None,
        losses: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Adversarial images: ``steps`` ascents of the cross-entropy by ``alpha`` x sign(gradient),
    each projected onto the eps-ball around ``x`` and clipped to [0, 1]. ``losses``, when given,
    receives each image's loss before every step and after the last."""
    x = x.detach().float()
    adv = x.clone()
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        adv = (adv + (2 * noise - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv).float(), y, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), adv)
        if losses is not None:
            losses.append(loss.detach())
        adv = adv.detach() + alpha * grad.sign()
        adv = (x + (adv - x).clamp(-eps, eps)).clamp(0, 1)
    if losses is not None:
        with torch.no_grad():
            losses.append(F.cross_entropy(model(adv).float(), y, reduction="none"))
    return adv.detach()


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """The fast gradient sign method (Goodfellow et al. 2015): one step of size eps."""
    return pgd(model, x, y, eps, alpha=eps, steps=1)


def adversarial_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, kind: str, eps: float, steps: int,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Training examples for ``classify.adversarial``: ``fgsm_rs`` is FGSM from a random start with
    alpha = 1.25 eps (Wong et al. 2020, "Fast is better than free"); ``pgd`` is ``steps`` steps
    from a random start with alpha = 2.5 eps / steps (Madry et al.)."""
    if kind == "fgsm_rs":
        return pgd(model, x, y, eps, alpha=1.25 * eps, steps=1, random_start=True, generator=generator)
    if kind == "pgd":
        return pgd(model, x, y, eps, alpha=2.5 * eps / steps, steps=steps, random_start=True,
                   generator=generator)
    raise DlfpError(f"classify.adversarial={kind!r} is unknown; use none, fgsm_rs or pgd")


class AdversarialBatches:
    """Adversarial training as a step on the training batches, before the model's loss: each batch
    of pixels (``batches`` yields them augmented, not yet transformed) is attacked through the
    model's input transforms (``adversarial_batch``), then transformed, so ``model.loss`` takes it
    like any batch. A batch source like the loader it wraps (``len``, ``epoch``) for the driver.

    The attack runs in ``autocast()`` (the update's: as the loss runs) on the model in its
    training mode, micro-batch by micro-batch when the update accumulates ``micro_batches``, and
    draws its random starts from torch's global generator, which a resumed run restores.
    """

    def __init__(self, batches: Any, model: nn.Module, transforms: list[Transform], kind: str, eps: float,
                 steps: int, micro_batches: int = 1,
                 autocast: Callable[[], AbstractContextManager] = nullcontext) -> None:
        self.batches, self.model = batches, PixelModel(model, transforms)
        self.kind, self.eps, self.steps = kind, eps, steps
        self.micro_batches, self.autocast = micro_batches, autocast

    def __len__(self) -> int:
        return len(self.batches)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        for batch in self.batches.epoch(epoch, start):
            yield self.attacked(batch)

    def attacked(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch with its images ``x`` attacked and transformed."""
        k = self.micro_batches
        with self.autocast():
            attacked = [adversarial_batch(self.model, x, y, self.kind, self.eps, self.steps)
                        for x, y in zip(unit_pixels(batch["x"]).chunk(k), batch["y"].chunk(k))]
        return {**batch, "x": self.model.inputs(torch.cat(attacked))}


def pgd_attack(model: torch.nn.Module, eps: float, steps: int, generator: torch.Generator) -> Attack:
    """PGD from a random start with steps of 2.5 eps / steps (Madry et al.: 2/255 for 10 steps at 8/255)."""
    return lambda x, y: pgd(model, x, y, eps, 2.5 * eps / steps, steps, random_start=True,
                            generator=generator)


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack | None,
             batch_size: int, desc: str) -> float:
    """Accuracy on ``attack(x, y)`` (or on ``x``), batch by batch with a progress bar."""
    correct, batches = 0, range(0, len(y), batch_size)
    progress = Progress(len(batches), desc=desc, unit="batch")
    for done, start in enumerate(batches, 1):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        if attack is not None:
            xb = attack(xb, yb)
        with torch.no_grad():
            correct += int((model(xb).argmax(1) == yb).sum())
        progress.advance()
        progress.show(done, accuracy=correct / min(len(y), start + batch_size))
    progress.close()
    return correct / len(y)
