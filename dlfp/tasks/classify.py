"""Supervised image classification with a torch model (the MNIST network, and later CIFAR).

Recipe: load the dataset into memory on the device, build model/optimizer/schedule from config,
train with the shared loop, then evaluate every split, plot the curves and confusion matrix.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from dlfp.data import ImageData
from dlfp.data.loader import InMemoryLoader
from dlfp.engine.classification import classification_metrics, confusion_matrix, score_splits
from dlfp.engine.loop import fit, total_steps
from dlfp.engine.optim import build_optimizer, build_schedule
from dlfp.errors import DlfpError
from dlfp.run import Run
from dlfp.viz.classification import plot_classification


def run(cfg: DictConfig, run: Run) -> dict[str, float]:
    hw = run.hw
    data: ImageData = instantiate(cfg.dataset)
    model: nn.Module = instantiate(cfg.model)
    _check_model_fits(model, data)
    model.to(hw.device)
    if hw.channels_last:
        model.to(memory_format=torch.channels_last)

    train_loader = InMemoryLoader(
        data.train.to(hw.device), cfg.train.batch_size, data.mean, data.std,
        shuffle=True, seed=cfg.seed,
    )
    eval_loaders = {
        split: InMemoryLoader(s.to(hw.device), cfg.train.eval_batch_size, data.mean, data.std,
                              shuffle=False)
        for split, s in data.eval_splits.items()
    }
    steps = total_steps(cfg.train, len(train_loader))
    optimizer = build_optimizer(cfg.optimizer, model)
    scheduler = build_schedule(cfg.schedule, optimizer, steps)

    def step_loss(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(net(x), y)

    def evaluate_val(net: nn.Module) -> dict[str, dict[str, float]]:
        return {"val": evaluate(net, eval_loaders["val"], data.num_classes)[0]}

    result = fit(
        model, train_loader, step_loss, evaluate_val, run=run, optimizer=optimizer,
        scheduler=scheduler, steps=steps, train_cfg=cfg.train, resume=cfg.resume,
    )

    model.eval()
    with torch.no_grad():
        scores, confusions = score_splits(lambda ld: evaluate(model, ld, data.num_classes), eval_loaders)
    summary = {"steps": float(result.steps), **scores}
    run.timings["train_seconds"] = result.train_seconds
    plot_classification(run.metrics.records(), confusions, data.classes, data.name, run.plots_dir)
    return summary


def evaluate(
    net: nn.Module, loader: InMemoryLoader, num_classes: int
) -> tuple[dict[str, float], np.ndarray]:
    """Mean cross-entropy, error and accuracy over a split, and its confusion matrix."""
    loss_sum, confusion = 0.0, np.zeros((num_classes, num_classes), dtype=np.int64)
    for x, y in loader.epoch(0):
        logits = net(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        confusion += confusion_matrix(y.cpu().numpy(), logits.argmax(1).cpu().numpy(), num_classes)
    return classification_metrics(loss_sum, confusion), confusion


def _check_model_fits(model: nn.Module, data: ImageData) -> None:
    out = getattr(model, "classifier", None)
    last = out[-1] if isinstance(out, nn.Sequential) else None
    if isinstance(last, nn.Linear) and last.out_features != data.num_classes:
        raise DlfpError(
            f"model has {last.out_features} outputs but dataset {data.name} has "
            f"{data.num_classes} classes; set model.num_classes={data.num_classes}"
        )
