"""What every image classifier shares: its training loss on a batch, stated once."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Classifier(nn.Module):
    """An image classifier: ``forward`` maps images to logits; ``loss(batch)`` is the cross-entropy
    of ``self(batch["x"])`` against ``batch["y"]``, label-smoothed by ``label_smoothing``.

    ``label_smoothing`` is a training setting (``classify.label_smoothing``), not part of the
    network: the task sets it on the model, so a checkpoint's constructor arguments rebuild the
    same network whatever it was trained with. Its 0 here is for a model used without config.
    """

    label_smoothing: float = 0.0

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(self(batch["x"]), batch["y"], label_smoothing=self.label_smoothing)
