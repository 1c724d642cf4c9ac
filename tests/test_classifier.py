"""The classifiers' own training loss (dlfp/models/classifier.py), and adversarial training as a step
on the training batches before that loss (dlfp/eval/attacks.py, AdversarialBatches)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlfp.data.images import Split
from dlfp.data.loader import Loader
from dlfp.data.transforms import Standardize, unit_pixels
from dlfp.eval.attacks import AdversarialBatches, PixelModel, adversarial_batch
from dlfp.models import model_from_schema
from dlfp.models.classifier import Classifier

CLASSIFIERS = {  # (model, input shape), small
    "small_cnn": (lambda: model_from_schema("small_cnn", widths=(4, 8), hidden=16), (1, 28, 28)),
    "patch_mlp": (lambda: model_from_schema("patch_mlp"), (1, 28, 28)),
    "allcnn": (lambda: model_from_schema("allcnn_t", c1=8, c2=16), (3, 32, 32)),
    "fastnet": (lambda: model_from_schema("fastnet", widths=(8, 16, 16)), (3, 32, 32)),
    "resnet": (lambda: model_from_schema("resnet", depth=18), (3, 32, 32)),
}


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_every_classifier_loss_is_the_label_smoothed_cross_entropy_stated_once(name: str) -> None:
    build, shape = CLASSIFIERS[name]
    torch.manual_seed(0)
    model = build().train()
    assert isinstance(model, Classifier) and "loss" not in type(model).__dict__  # inherited, not restated
    batch = {"x": torch.randn(4, *shape), "y": torch.tensor([0, 3, 9, 1])}
    for smoothing in (0.0, 0.2):
        model.label_smoothing = smoothing
        torch.manual_seed(1)  # dropout draws the same
        loss = model.loss(batch)
        torch.manual_seed(1)
        expected = F.cross_entropy(model(batch["x"]), batch["y"], label_smoothing=smoothing)
        assert torch.equal(loss, expected), smoothing


class TinyNet(Classifier):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.2), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _pixels(n: int = 16) -> Split:
    g = torch.Generator().manual_seed(2)
    return Split(x=torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8),
                 y=torch.randint(0, 10, (n,), generator=g))


@pytest.mark.parametrize("kind", ["fgsm_rs", "pgd"])
def test_adversarial_batches_train_on_what_the_attack_inside_the_loss_trained_on(kind: str) -> None:
    """The step before ``model.loss`` gives the loss, gradients and BatchNorm statistics of the
    attack that ran inside the task's loss closure before it (pixels -> attack through the
    transforms -> the model on the transformed attacked images), drawing the same random starts."""
    transforms = [Standardize([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])]
    torch.manual_seed(0)
    before = TinyNet().train()
    after = copy.deepcopy(before)
    batch = next(Loader(_pixels(), 8, shuffle=True).epoch(0))

    torch.manual_seed(5)  # the closure: attack and loss in one
    pixel_model = PixelModel(before, transforms)
    adv = adversarial_batch(pixel_model, unit_pixels(batch["x"]), batch["y"], kind, 8 / 255, 2)
    expected = F.cross_entropy(pixel_model(adv), batch["y"])
    expected.backward()

    torch.manual_seed(5)  # the batch step, then the model's own loss
    attacked = AdversarialBatches(None, after, transforms, kind, 8 / 255, 2).attacked(batch)
    loss = after.loss(attacked)
    loss.backward()
    assert torch.equal(loss, expected)
    for (name, a), b in zip(before.state_dict().items(), after.state_dict().values()):
        assert torch.equal(a, b), name  # BatchNorm running statistics
    for a, b in zip(before.parameters(), after.parameters()):
        assert torch.equal(a.grad, b.grad)


def test_adversarial_batches_are_the_loaders_attacked_micro_batch_by_micro_batch() -> None:
    transforms = [Standardize([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])]
    torch.manual_seed(0)
    model = TinyNet().train()
    loader = Loader(_pixels(), 8, shuffle=True)
    source = AdversarialBatches(loader, model, transforms, "fgsm_rs", 8 / 255, 1, micro_batches=2)
    assert len(source) == len(loader) == 2
    torch.manual_seed(3)
    batches = list(source.epoch(0, start=1))
    assert len(batches) == 1
    torch.manual_seed(3)
    plain = list(loader.epoch(0, start=1))[0]
    pixel_model = PixelModel(model, transforms)
    halves = [adversarial_batch(pixel_model, unit_pixels(x), y, "fgsm_rs", 8 / 255, 1)
              for x, y in zip(plain["x"].chunk(2), plain["y"].chunk(2))]
    assert torch.equal(batches[0]["x"], pixel_model.inputs(torch.cat(halves)))
    assert torch.equal(batches[0]["y"], plain["y"])
