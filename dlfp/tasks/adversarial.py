"""Attacks on a trained classifier (experiment=cifar_adversarial), as the study analyses its CIFAR models.

Recipe: rebuild the classifier from its checkpoint alone with its input transforms inside it
(attacks work on pixels in [0, 1]; eval/trained_classifier.py); reload the split it was
evaluated on; then
1. input gradients of correctly and wrongly classified images (two figures);
2. iterative FGSM (5 steps of eps/5): the loss after each step and the perturbation's progression;
3. accuracy clean and under FGSM on the whole split, under PGD (random start) on a seeded subset,
   and against eps for FGSM and PGD (a figure).
Everything runs in float32 with BatchNorm in eval mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from dlfp.data import ImageData
from dlfp.data.transforms import unit_pixels
from dlfp.engine.run import Run
from dlfp.errors import DlfpError
from dlfp.eval.attacks import accuracy, fgsm, pgd, pgd_attack
from dlfp.eval.trained_classifier import load_classifier
from dlfp.viz.adversarial import (
    plot_accuracy_vs_eps,
    plot_input_gradients,
    plot_loss_per_step,
    plot_progression,
)


def run(cfg: DictConfig, run: Run) -> dict[str, float]:
    acfg = cfg.adversarial
    if not acfg.checkpoint:
        raise DlfpError("set adversarial.checkpoint to a classifier's run directory or its "
                        "checkpoints/last.pt")
    model, data = load_classifier(acfg.checkpoint, cfg.paths.data_dir, run.hw.device)
    x, y = split_pixels(data, acfg.split, run.hw.device)
    eps, n = acfg.eps / 255, acfg.batch_size
    generator = torch.Generator(run.hw.device).manual_seed(acfg.seed)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(acfg.seed))
    subset = order[: acfg.n_images].to(x.device)
    xs, ys = x[subset], y[subset]
    classes = data.classes

    metrics = {"clean/accuracy": accuracy(model, x, y, None, n, "clean"),
               "fgsm/accuracy": accuracy(model, x, y, lambda a, b: fgsm(model, a, b, eps), n,
                                         f"FGSM eps {acfg.eps:g}"),
               "subset/clean_accuracy": accuracy(model, xs, ys, None, n, "clean subset")}
    for steps in acfg.pgd_steps:
        attack = pgd_attack(model, eps, steps, generator)
        metrics[f"pgd{steps}/accuracy"] = accuracy(model, xs, ys, attack, n, f"PGD-{steps} eps {acfg.eps:g}")

    gradient_figures(model, xs, ys, classes, acfg.gradient_images, run)
    metrics.update(iterative_fgsm(model, xs, ys, eps, acfg.ifgsm_steps, n, run))

    curve: dict[str, list[float]] = {"FGSM": [], f"PGD-{acfg.curve_pgd_steps}": []}
    for e in acfg.eps_curve:
        attacks = {"FGSM": lambda a, b, e=e: fgsm(model, a, b, e / 255),
                   f"PGD-{acfg.curve_pgd_steps}": pgd_attack(model, e / 255, acfg.curve_pgd_steps, generator)}
        for name, attack in attacks.items():
            value = accuracy(model, xs, ys, attack, n, f"{name} eps {e:g}")
            curve[name].append(value)
            key = name.lower().replace("-", "")
            metrics[f"subset/{key}_eps{e:g}_accuracy"] = value
            run.metrics.log(0, f"{key}_curve", eps_255=e, accuracy=value)
    plot_accuracy_vs_eps(list(acfg.eps_curve), curve, run.plots_dir / "accuracy_vs_eps.png",
                         clean=metrics["subset/clean_accuracy"], n_images=len(ys))
    return metrics


def split_pixels(data: ImageData, split: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The split's images as float pixels in [0, 1] and its labels, on ``device``."""
    if split not in data.eval_splits:
        raise DlfpError(f"adversarial.split={split} is not a split of {data.name}; "
                        f"choose one of {sorted(data.eval_splits)}")
    images = data.eval_splits[split]
    return unit_pixels(images.x).to(device), images.y.to(device)


def gradient_figures(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, classes: list[str],
                     count: int, run: Run) -> None:
    """|dL/dx| and the signed gradient of the first ``count`` correctly and wrongly classified images."""
    with torch.no_grad():
        predicted = torch.cat([model(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)])
    for name, mask in (("correct", predicted == y), ("wrong", predicted != y)):
        index = mask.nonzero().flatten()[:count]
        if len(index) == 0:
            continue
        images = x[index].clone().requires_grad_(True)
        loss = F.cross_entropy(model(images), y[index], reduction="sum")
        (grad,) = torch.autograd.grad(loss, images)
        plot_input_gradients(images.detach().cpu(), grad.cpu(), [classes[i] for i in y[index].tolist()],
                             [classes[i] for i in predicted[index].tolist()],
                             run.plots_dir / f"input_gradients_{name}.png",
                             title=f"{name}ly classified test images: the image, |dL/dx| (max over "
                                   "channels), the signed gradient")


def iterative_fgsm(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
                   batch_size: int, run: Run) -> dict[str, float]:
    """I-FGSM (BIM): ``steps`` steps of eps / steps from the clean images; each image's loss
    before the first step and after each (metrics.jsonl and a figure), and the progression of
    the first few images."""
    losses: list[list[torch.Tensor]] = []
    correct, progression = 0, []
    for start in range(0, len(y), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        per_step: list[torch.Tensor] = []
        if start == 0:  # the first images, step by step, for the progression figure
            frames = [xb[:4]]
            for k in range(1, steps + 1):
                frames.append(pgd(model, xb[:4], yb[:4], eps, eps / steps, k))
            progression = [f.cpu() for f in frames]
        adv = pgd(model, xb, yb, eps, eps / steps, steps, losses=per_step)
        losses.append(per_step)
        with torch.no_grad():
            correct += int((model(adv).argmax(1) == yb).sum())
    by_step = torch.stack([torch.cat([batch[k] for batch in losses]) for k in range(steps + 1)]).cpu()
    for k, values in enumerate(by_step):
        run.metrics.log(k, "ifgsm", loss_mean=float(values.mean()), loss_std=float(values.std()),
                        loss_median=float(values.median()))
    plot_loss_per_step(by_step, run.plots_dir / "ifgsm_loss.png", eps_255=eps * 255)
    plot_progression(progression, run.plots_dir / "ifgsm_progression.png", eps=eps)
    return {"ifgsm/accuracy": correct / len(y), "ifgsm/loss_clean": float(by_step[0].mean()),
            "ifgsm/loss_final": float(by_step[-1].mean()), **step_changes(by_step)}


def step_changes(by_step: torch.Tensor) -> dict[str, float]:
    """Of all (image, step) pairs of the losses (steps + 1, images): the fraction where the step
    raised the loss strictly, and the fraction where it left it exactly unchanged (a saturated
    loss, a zero gradient): ties are not rises."""
    before, after = by_step[:-1], by_step[1:]
    return {"ifgsm/step_increase_fraction": float((after > before).float().mean()),
            "ifgsm/step_tie_fraction": float((after == before).float().mean())}
