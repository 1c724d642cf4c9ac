"""Supervised image classification with a torch model (the MNIST network, and later CIFAR).

Recipe: load the dataset into memory on the device, build model and optimizer from config, train
with the engine's driver, then evaluate every split, plot the curves and confusion matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from dlfp.data import ImageData, load_dataset
from dlfp.data.loader import Loader, image_loaders, transformed
from dlfp.data.transforms import build_transforms, unit_pixels
from dlfp.engine.driver import fit
from dlfp.engine.optim import build_optimizer
from dlfp.engine.run import Run
from dlfp.engine.updates import TorchUpdate
from dlfp.errors import DlfpError
from dlfp.eval.attacks import AdversarialBatches, PixelModel, accuracy, pgd_attack
from dlfp.eval.classification import SplitScores, classification_metrics, confusion_matrix
from dlfp.models import build_model
from dlfp.viz.classification import plot_augmentations, plot_classification


def run(cfg: DictConfig, run: Run) -> dict[str, float]:
    hw, ccfg = run.hw, cfg.classify
    data: ImageData = load_dataset(cfg.dataset)
    model = build_model(cfg.model)
    _check_model_fits(model, data)
    model.label_smoothing = ccfg.label_smoothing
    model.to(hw.device)
    if hw.channels_last:
        model.to(memory_format=torch.channels_last)
    adversarial = ccfg.adversarial != "none"
    if adversarial and hw.ranks.active:
        raise DlfpError("classify.adversarial cannot run data-parallel (its attacks differentiate the "
                        "model outside DDP); run it as one process, without torchrun")
    train_loader, eval_loaders = image_loaders(data, cfg, hw.device, pixels=adversarial,
                                               rank=hw.ranks.rank, world_size=hw.ranks.world_size)
    if hasattr(model, "fit_to_data"):  # data-dependent initialisation (FastNet's whitening filters)
        model.fit_to_data(fitting_inputs(data, cfg, hw.device))
    input_transforms = build_transforms(cfg.dataset.transforms, data)
    scores = SplitScores(lambda net, loader: evaluate(net, loader, data.num_classes, ccfg.tta), eval_loaders)
    update = TorchUpdate(model, build_optimizer(cfg.optimizer, model), hw, cfg.train)
    batches = train_loader
    if adversarial:  # the loader yields pixels; they are attacked, then transformed, before the loss
        batches = AdversarialBatches(train_loader, update.net, input_transforms, ccfg.adversarial,
                                     ccfg.adversarial_eps / 255, ccfg.adversarial_steps,
                                     micro_batches=cfg.train.accumulate, autocast=update.autocast)
    during = splits_during_training(ccfg.eval_splits, eval_loaders, data.name)
    result = fit(update, batches, lambda net: scores.during(net, during), run=run, train_cfg=cfg.train,
                 schedule=cfg.schedule, resume=cfg.resume, on_epoch_start=getattr(model, "set_epoch", None))
    if not hw.ranks.is_main:  # rank 0 alone scores, plots and writes
        return {}

    with update.evaluation() as net:  # the splits of the last evaluation are reused, not rescored
        final, confusions = scores.final(net)
    if adversarial:
        final.update(robust_accuracy(model, data, input_transforms, cfg, hw.device))
    plot_classification(run.metrics.records(), confusions, data.classes, data.name, run.plots_dir)
    if cfg.dataset.augment:
        plot_augmented(data, cfg, run)
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"steps": float(result.steps), "parameters": float(parameters), **final}


def robust_accuracy(model: nn.Module, data: ImageData, transforms: list, cfg: DictConfig,
                    device: torch.device | str) -> dict[str, float]:
    """PGD-20 (random start) accuracy at ``classify.adversarial_eps`` on the first
    ``classify.adversarial_eval_images`` test images (validation when there is no test split)."""
    split_name = "test" if data.test is not None else "val"
    split = data.eval_splits[split_name]
    n = min(cfg.classify.adversarial_eval_images, len(split))
    x, y = unit_pixels(split.x[:n].to(device)), split.y[:n].to(device)
    eps = cfg.classify.adversarial_eps
    pixel_model = PixelModel(model.float().eval(), transforms)
    attack = pgd_attack(pixel_model, eps / 255, 20, torch.Generator(device).manual_seed(cfg.seed))
    batch = cfg.train.eval_batch_size
    return {f"{split_name}/pgd20_accuracy": accuracy(pixel_model, x, y, attack, batch, f"PGD-20 eps {eps:g}"),
            f"{split_name}/pgd20_clean_accuracy": accuracy(pixel_model, x, y, None, batch, "clean")}


def fitting_inputs(data: ImageData, cfg: DictConfig, device: torch.device | str,
                   n: int = 5000) -> torch.Tensor:
    """``n`` training images drawn at random (seeded by ``seed``) as the model sees them at evaluation
    (``dataset.transforms``). Random, not the first n: a folder-read dataset is stored class by class."""
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(cfg.seed))
    chosen = data.train.subset(order[: min(n, len(data.train))]).to(device)
    return transformed(chosen, build_transforms(cfg.dataset.transforms, data))["x"]


def splits_during_training(splits: Sequence[str], eval_loaders: dict[str, Loader], dataset: str) -> list[str]:
    """``classify.eval_splits``, each of which the dataset must have."""
    missing = [s for s in splits if s not in eval_loaders]
    if missing:
        raise DlfpError(f"classify.eval_splits names {missing}, but dataset {dataset} has only "
                        f"{sorted(eval_loaders)}; set classify.eval_splits=[{','.join(eval_loaders)}]")
    return list(splits)


def plot_augmented(data: ImageData, cfg: DictConfig, run: Run, images: int = 8, draws: int = 5) -> None:
    """plots/augmentations.png: a few training images as stored, then as ``dataset.augment`` draws them."""
    augment = build_transforms(cfg.dataset.augment, data, key="dataset.augment")
    first = data.train.subset(torch.arange(images))
    loader = Loader(first, images, shuffle=False, transforms=augment)  # epoch e: the e-th draw
    rows = [unit_pixels(first.x)] + [unit_pixels(next(loader.epoch(draw))["x"]) for draw in range(draws)]
    grid = torch.stack(rows, dim=1).clamp(0, 1).permute(0, 1, 3, 4, 2).numpy()  # (images, draws+1, H, W, C)
    plot_augmentations(grid, run.plots_dir / "augmentations.png",
                       title=f"{data.name}: stored (left), then {draws} draws of dataset.augment")


def evaluate(net: nn.Module, loader: Loader, num_classes: int,
             tta: str = "none") -> tuple[dict[str, float], np.ndarray]:
    """Mean cross-entropy, error and accuracy over a split, and its confusion matrix."""
    loss_sum, confusion = 0.0, np.zeros((num_classes, num_classes), dtype=np.int64)
    for batch in loader.epoch(0):
        x, y = batch["x"], batch["y"]
        logits = predict(net, x, tta)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        confusion += confusion_matrix(y.cpu().numpy(), logits.argmax(1).cpu().numpy(), num_classes)
    return classification_metrics(loss_sum, confusion), confusion


def predict(net: nn.Module, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """Logits, averaged over test-time views (``classify.tta``): none; flip (the image and its
    mirror); flip_translate (half that, half the mean over the flip pair of the image shifted one
    pixel each way along both axes, reflect-padded), as the fast CIFAR trainers evaluate."""
    if tta == "none":
        return net(x).float()
    mirrored = 0.5 * (net(x).float() + net(x.flip(-1)).float())
    if tta == "flip":
        return mirrored
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    h, w = x.shape[-2:]
    shifted = [padded[..., :h, :w], padded[..., 2:, 2:]]
    return 0.5 * mirrored + 0.25 * sum(predict(net, s.contiguous(), "flip") for s in shifted)


def _check_model_fits(model: nn.Module, data: ImageData) -> None:
    """The classifiers say how many classes they predict (``num_classes``); it must be the data's."""
    outputs = getattr(model, "num_classes", None)
    if outputs is not None and outputs != data.num_classes:
        raise DlfpError(
            f"model has {outputs} outputs but dataset {data.name} has "
            f"{data.num_classes} classes; set model.num_classes={data.num_classes}"
        )
    if hasattr(model, "in_channels"):
        data.check_in_channels(model.in_channels)
