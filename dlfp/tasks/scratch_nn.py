"""The MNIST network written from scratch in NumPy, trained like its PyTorch twin (task classify).

Recipe: load the dataset, build the NumPy network from the ``cfg.model`` fields of ``patch_mlp``
with weights drawn from a generator seeded by ``cfg.seed``, feed it the very batches the torch run
sees (the same loaders on the CPU, their tensors viewed as NumPy arrays), train with SGD through
the engine's driver, then evaluate every split and draw the same figures as classify.
"""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from dlfp.data import ImageData, load_dataset
from dlfp.data.loader import Loader, image_loaders
from dlfp.engine.driver import fit
from dlfp.engine.run import Run
from dlfp.errors import DlfpError
from dlfp.eval.classification import SplitScores, classification_metrics, confusion_matrix
from dlfp.scratch.loss import SoftmaxCrossEntropy
from dlfp.scratch.network import Network, build_patch_mlp
from dlfp.scratch.sgd import SGD
from dlfp.scratch.update import ScratchUpdate
from dlfp.viz.classification import plot_classification

PATCH_MLP = "dlfp.models.patch_mlp.PatchMLP"
TORCH_SGD = "torch.optim.SGD"


def run(cfg: DictConfig, run: Run) -> dict[str, float]:
    _check_supported(cfg, run)
    data: ImageData = load_dataset(cfg.dataset)
    net = build_network(cfg.model, data, seed=cfg.seed)
    train_loader, eval_loaders = image_loaders(data, cfg, "cpu")
    sgd = SGD(net.parameters(), lr=cfg.optimizer.lr, momentum=cfg.optimizer.momentum,
              weight_decay=cfg.optimizer.weight_decay, nesterov=cfg.optimizer.nesterov)
    update = ScratchUpdate(net, sgd, cfg.train.grad_clip)
    scores = SplitScores(lambda model, loader: evaluate(model, loader, data.num_classes), eval_loaders)
    result = fit(update, train_loader, lambda model: scores.during(model, ["val"]),
                 run=run, train_cfg=cfg.train, schedule=cfg.schedule, resume=cfg.resume)

    final, confusions = scores.final(net)  # the last evaluation's validation scores are reused
    plot_classification(run.metrics.records(), confusions, data.classes, data.name, run.plots_dir)
    parameters = sum(value.size for _, value, _ in net.parameters())  # as the torch twin reports it
    return {"steps": float(result.steps), "parameters": float(parameters), **final}


def build_network(model_cfg: DictConfig, data: ImageData, seed: int, dtype: np.dtype = np.float32) -> Network:
    """The NumPy patch_mlp for ``data``, initialised from ``np.random.default_rng(seed)``."""
    shape = tuple(data.train.x.shape[1:])
    wanted = (model_cfg.in_channels, model_cfg.image_size, model_cfg.image_size)
    if shape != wanted:
        raise DlfpError(
            f"dataset {data.name} has images {shape} but the model expects {wanted}; set "
            f"model.in_channels={shape[0]} model.image_size={shape[1]}"
        )
    if model_cfg.num_classes != data.num_classes:
        raise DlfpError(
            f"model has {model_cfg.num_classes} outputs but dataset {data.name} has "
            f"{data.num_classes} classes; set model.num_classes={data.num_classes}"
        )
    return build_patch_mlp(
        model_cfg.in_channels, model_cfg.image_size, model_cfg.patch_size, model_cfg.embed_channels,
        list(model_cfg.hidden), model_cfg.num_classes, rng=np.random.default_rng(seed), dtype=dtype,
    )


def evaluate(net: Network, loader: Loader, num_classes: int) -> tuple[dict[str, float], np.ndarray]:
    """Mean cross-entropy, error and accuracy over a split, and its confusion matrix."""
    loss_fn = SoftmaxCrossEntropy()
    loss_sum, confusion = 0.0, np.zeros((num_classes, num_classes), dtype=np.int64)
    for batch in loader.epoch(0):
        logits = net.forward(batch["x"].numpy())
        labels = batch["y"].numpy()
        loss_fn.forward(logits, labels)
        loss_sum += float(loss_fn.losses.sum(dtype=np.float64))
        confusion += confusion_matrix(labels, logits.argmax(1), num_classes)
    return classification_metrics(loss_sum, confusion), confusion


def _check_supported(cfg: DictConfig, run: Run) -> None:
    if cfg.model._target_ != PATCH_MLP:
        raise DlfpError(
            f"task scratch_nn builds the NumPy version of model=patch_mlp only (got "
            f"{cfg.model._target_}); use model=patch_mlp or task=classify"
        )
    if cfg.optimizer._target_ != TORCH_SGD:
        raise DlfpError(
            f"the NumPy network trains with SGD only (got {cfg.optimizer._target_}); "
            "use optimizer=sgd (momentum, nesterov and weight_decay are supported)"
        )
    if cfg.train.accumulate != 1:
        raise DlfpError(f"the NumPy network does not accumulate gradients (train.accumulate="
                        f"{cfg.train.accumulate}); use train.accumulate=1")
    if run.hw.device.type != "cpu":
        raise DlfpError(
            f"the NumPy network runs on the CPU only, but hardware selected {run.hw.device}; "
            "use hardware=cpu"
        )
