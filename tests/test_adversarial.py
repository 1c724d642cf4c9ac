"""Attacks: FGSM, iterative FGSM and PGD against torchattacks, the eps-ball and [0, 1] box, the
I-FGSM loss per step, the analysis of a trained checkpoint through the CLI with its errors, and
adversarial training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import read_summary, run_inprocess
from torch import nn

from dlfp.data.transforms import Standardize
from dlfp.errors import DlfpError
from dlfp.eval.attacks import PixelModel, adversarial_batch, fgsm, pgd
from dlfp.eval.trained_classifier import input_transforms
from dlfp.tasks.adversarial import step_changes

EPS = 8 / 255
TINY_FAST = ["experiment=cifar_fast", "dataset=cifar_synthetic", "dataset.n_train=64", "dataset.val_size=0",
             "dataset.n_test=40", "hardware=cpu", "hardware.threads=1", "model.widths=[8,16,16]",
             "train.batch_size=16", "train.eval_batch_size=20"]


def tiny_pixel_model(seed: int = 0) -> PixelModel:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                        nn.Flatten(), nn.Linear(32, 10))
    net(torch.randn(16, 3, 8, 8))  # BatchNorm statistics that are not the identity
    return PixelModel(net, [Standardize([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])]).eval()


def images(n: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_fgsm_bim_and_pgd_equal_torchattacks() -> None:
    torchattacks = pytest.importorskip("torchattacks")
    model = tiny_pixel_model()
    x, y = images()
    ours = {"FGSM": fgsm(model, x, y, EPS), "BIM": pgd(model, x, y, EPS, EPS / 5, 5),
            "PGD": pgd(model, x, y, EPS, 2 / 255, 10)}
    theirs = {"FGSM": torchattacks.FGSM(model, eps=EPS),
              "BIM": torchattacks.BIM(model, eps=EPS, alpha=EPS / 5, steps=5),
              "PGD": torchattacks.PGD(model, eps=EPS, alpha=2 / 255, steps=10, random_start=False)}
    for name, attack in theirs.items():
        assert (ours[name] - x).abs().max() > EPS / 2, name  # the attack moved the images
        torch.testing.assert_close(ours[name], attack(x, y), atol=1e-6, rtol=0, msg=name)


@pytest.mark.parametrize("seed", range(4))
def test_every_attack_stays_in_the_eps_ball_and_the_unit_box(seed: int) -> None:
    model = tiny_pixel_model(seed)
    x, y = images(seed=seed)
    x[:4] = x[:4].round()  # pixels at 0 and 1, where the box clips
    g = torch.Generator().manual_seed(seed)
    attacked = [fgsm(model, x, y, EPS), pgd(model, x, y, EPS, EPS / 5, 5),
                pgd(model, x, y, EPS, 2 / 255, 10, random_start=True, generator=g),
                adversarial_batch(model, x, y, "fgsm_rs", EPS, 1, generator=g),
                adversarial_batch(model, x, y, "pgd", EPS, 7, generator=g)]
    for adv in attacked:
        assert (adv - x).abs().max() <= EPS + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1


def test_iterative_fgsm_raises_the_loss_on_average_at_every_step() -> None:
    model = tiny_pixel_model()
    x, y = images(256)
    losses: list[torch.Tensor] = []
    pgd(model, x, y, EPS, EPS / 5, 5, losses=losses)
    means = [float(step.mean()) for step in losses]
    assert len(means) == 6
    assert all(after > before for before, after in zip(means, means[1:])), means


def test_ifgsm_step_fractions_count_ties_apart_from_rises() -> None:
    """``>=`` counted an unchanged loss (a saturated softmax, a zero gradient) as a rise."""
    losses = torch.tensor([[1.0, 2.0, 3.0], [1.5, 2.0, 2.0], [1.5, 2.0, 2.5]])  # (steps + 1, images)
    # image 0: a rise, then a tie; image 1: two ties; image 2: a fall, then a rise
    assert step_changes(losses) == {"ifgsm/step_increase_fraction": pytest.approx(2 / 6),
                                    "ifgsm/step_tie_fraction": pytest.approx(3 / 6)}


def test_unknown_adversarial_training_kind_is_one_clear_error() -> None:
    with pytest.raises(DlfpError, match="classify.adversarial='mim' is unknown; use none, fgsm_rs or pgd"):
        adversarial_batch(tiny_pixel_model(), *images(), "mim", EPS, 1)


def test_the_analysis_of_a_trained_checkpoint(tmp_path: Path) -> None:
    """In process; dlfp-reproduce's smoke run (test_reproduce.py) runs it through dlfp-train."""
    trained = tmp_path / "trained"
    run_inprocess([*TINY_FAST, "train.epochs=3"], trained)
    analysis = tmp_path / "analysis"
    run_inprocess(["experiment=cifar_adversarial", f"adversarial.checkpoint={trained}",
                   "adversarial.n_images=20", "adversarial.batch_size=20", "adversarial.eps_curve=[4,8]",
                   "adversarial.pgd_steps=[2]",
                   "adversarial.curve_pgd_steps=2", "adversarial.gradient_images=3", "hardware=cpu",
                   "hardware.threads=1"], analysis)
    metrics = read_summary(analysis)["metrics"]
    for key in ("clean/accuracy", "fgsm/accuracy", "pgd2/accuracy", "ifgsm/accuracy",
                "subset/fgsm_eps4_accuracy", "subset/pgd2_eps8_accuracy"):
        assert 0 <= metrics[key] <= 1, key
    assert metrics["pgd2/accuracy"] <= metrics["subset/clean_accuracy"]
    assert metrics["ifgsm/loss_final"] > metrics["ifgsm/loss_clean"]
    assert metrics["ifgsm/step_increase_fraction"] + metrics["ifgsm/step_tie_fraction"] <= 1
    records = [json.loads(line) for line in (analysis / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "ifgsm"] == list(range(6))
    figures = ("input_gradients_correct.png", "ifgsm_loss.png", "ifgsm_progression.png",
               "accuracy_vs_eps.png")
    for figure in figures:
        assert (analysis / "plots" / figure).stat().st_size > 5_000, figure


def test_a_missing_or_foreign_checkpoint_is_one_clear_error(tmp_path: Path) -> None:
    base = ["experiment=cifar_adversarial", "hardware=cpu"]
    with pytest.raises(DlfpError, match="set adversarial.checkpoint"):
        run_inprocess(base, tmp_path / "a")
    with pytest.raises(DlfpError, match="holds no checkpoint"):
        run_inprocess([*base, f"adversarial.checkpoint={tmp_path / 'nowhere'}"], tmp_path / "b")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DlfpError, match="is not a readable dlfp checkpoint"):
        run_inprocess([*base, f"adversarial.checkpoint={junk}"], tmp_path / "c")
    foreign = tmp_path / "foreign.pt"
    torch.save({"config": json.dumps({"task": "vae"})}, foreign)
    with pytest.raises(DlfpError, match="is a checkpoint of task 'vae', not of task 'classify'"):
        run_inprocess([*base, f"adversarial.checkpoint={foreign}"], tmp_path / "d")


@pytest.mark.parametrize("kind", ["fgsm_rs", "pgd"])
def test_adversarial_training_reports_clean_and_pgd20_accuracy(tmp_path: Path, kind: str) -> None:
    metrics = run_inprocess([*TINY_FAST, "train.epochs=2", f"classify.adversarial={kind}",
                             "classify.adversarial_steps=2", "classify.adversarial_eval_images=20"],
                            tmp_path / "run")["metrics"]
    assert 0 <= metrics["test/pgd20_accuracy"] <= metrics["test/pgd20_clean_accuracy"] <= 1


def test_a_trained_classifiers_input_transforms_come_from_its_dataset_section_or_an_older_train() -> None:
    assert input_transforms({"dataset": {"transforms": ["standardize"], "augment": []}, "train": {}}) == [
        "standardize"]
    older = {"dataset": {"name": "mnist5k"}, "train": {"transforms": ["rescale"], "augment": []}}
    assert input_transforms(older) == ["rescale"]  # a checkpoint written before they moved to dataset.*
