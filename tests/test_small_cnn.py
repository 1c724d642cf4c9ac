"""The small MNIST CNN (the DDPM study's quality model): shapes, its features, its input scale, and
experiment=mnist_cnn end to end with a model rebuilt from the checkpoint alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import compose_config, read_summary, run_inprocess, without_hydra

from dlfp.config.checks import config_problems
from dlfp.data import load_dataset
from dlfp.data.transforms import Rescale
from dlfp.engine.checkpoint import load_checkpoint
from dlfp.models import model_from_schema, rebuild_model
from dlfp.models.small_cnn import SmallCNN

# a narrow model, 256 training images, 2 epochs of batch 32: a second or two
TINY_CNN = ["experiment=mnist_cnn", "hardware=cpu", "hardware.threads=1", "model.widths=[8,16]",
            "model.hidden=32", "dataset.train_size=256", "train.epochs=2", "train.batch_size=32"]


def test_shapes_features_and_forward_is_the_head_of_the_features() -> None:
    torch.manual_seed(0)
    model = model_from_schema("small_cnn").eval()
    assert sum(p.numel() for p in model.parameters()) == 468_010
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    features = model.features(x)
    assert features.shape == (5, 128) and (features >= 0).all()  # after the ReLU
    logits = model(x)
    assert logits.shape == (5, 10)
    assert torch.equal(logits, model.head(features))
    narrow = model_from_schema("small_cnn", widths=[8, 16, 32], hidden=20, num_classes=3, in_channels=2,
                               image_size=32)
    assert narrow.eval()(torch.zeros(2, 2, 32, 32)).shape == (2, 3)
    assert narrow.features(torch.zeros(2, 2, 32, 32)).shape == (2, 20)
    with pytest.raises(ValueError, match="not divisible"):
        model_from_schema("small_cnn", widths=[8, 8, 8])  # 28 is not a multiple of 8


def test_to_input_is_the_training_transform_and_leaves_ddpm_samples_as_they_are() -> None:
    pixels = torch.randint(0, 256, (7, 1, 28, 28), dtype=torch.uint8)
    pixels[0, 0, 0, :2] = torch.tensor([0, 255])
    trained_on = Rescale()({"x": pixels}, None)["x"]  # what experiment=mnist_cnn's loader yields
    assert torch.equal(SmallCNN.to_input(pixels), trained_on)
    assert trained_on[0, 0, 0, :2].tolist() == [-1.0, 1.0]
    samples = torch.rand(3, 1, 28, 28) * 2 - 1
    assert torch.equal(SmallCNN.to_input(samples), samples)
    assert SmallCNN.to_input(torch.tensor([-1.3, 0.5, 1.2])).tolist() == [-1.0, 0.5, 1.0]  # clamped
    unit = pixels.float() / 255
    assert torch.allclose(SmallCNN.to_input(unit, low=0, high=1), trained_on, atol=1e-6)


def test_the_experiment_uses_the_model_on_minus_one_to_one_and_checks_its_widths() -> None:
    cfg = compose_config(["experiment=mnist_cnn"])
    assert cfg.model._target_ == "dlfp.models.small_cnn.SmallCNN"
    assert list(cfg.dataset.transforms) == ["rescale"]
    assert cfg.dataset.name == "mnist5k" and cfg.objective == "val/error"
    bad = without_hydra(compose_config(["experiment=mnist_cnn", "model.widths=[8,8,8]"]))
    assert any("model" in p and "image_size" in p for p in config_problems(bad))


def _scored_by_rebuilt_model(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        logits = model(SmallCNN.to_input(x))
    return {"loss": F.cross_entropy(logits, y).item(),
            "accuracy": (logits.argmax(1) == y).sum().item() / len(y)}


def test_tiny_run_and_its_checkpoint_rebuild_the_trained_classifier(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    summary = run_inprocess(TINY_CNN, run_dir)
    metrics = summary["metrics"]
    assert summary["experiment"] == "mnist_cnn" and metrics["steps"] == 16  # 256 / 32 x 2 epochs
    assert {"val/accuracy", "val/error", "val/loss"} <= set(metrics)  # mnist5k has no test split
    assert metrics["val/accuracy"] > 0.3
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    model = rebuild_model(checkpoint)
    assert isinstance(model, SmallCNN) and not model.training and model.hidden == 32
    # the rebuilt model scores the validation split exactly as the trained one did at the end
    data = load_dataset(json.loads(checkpoint["config"])["dataset"])  # mnist5k, as the run split it
    val = data.eval_splits["val"]
    scored = _scored_by_rebuilt_model(model, val.x, val.y)
    assert scored["accuracy"] == pytest.approx(metrics["val/accuracy"], abs=1e-9)
    assert scored["loss"] == pytest.approx(metrics["val/loss"], rel=1e-4)


def test_tiny_run_on_real_mnist_reports_test_accuracy(tmp_path: Path, shared_data: Path) -> None:
    run_dir = tmp_path / "run"
    run_inprocess([*TINY_CNN, "dataset=mnist", f"paths.data_dir={shared_data}", "dataset.val_size=100",
                   "train.epochs=1", "classify.eval_splits=[]"], run_dir)
    metrics = read_summary(run_dir)["metrics"]
    assert {"test/accuracy", "test/error", "val/accuracy"} <= set(metrics)
    assert 0 <= metrics["test/accuracy"] <= 1  # 8 updates: the number is no measure, only its presence
