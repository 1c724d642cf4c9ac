"""The MNIST network written from scratch in NumPy, trained like its PyTorch twin (task classify).

Recipe: load the dataset, build the NumPy network from the ``cfg.model`` fields of ``patch_mlp``
with weights drawn from a generator seeded by ``cfg.seed``, feed it the very batches the torch run
sees (the same ``InMemoryLoader`` on the CPU, its tensors viewed as NumPy arrays), train with SGD
and the configured schedule, then evaluate every split and draw the same figures as classify.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from threadpoolctl import threadpool_limits

from dlfp.data import ImageData
from dlfp.data.loader import InMemoryLoader
from dlfp.engine.classification import classification_metrics, confusion_matrix, score_splits
from dlfp.engine.loop import total_steps
from dlfp.engine.optim import lr_factor
from dlfp.errors import DlfpError
from dlfp.run import Run
from dlfp.scratch.fit import fit
from dlfp.scratch.loss import SoftmaxCrossEntropy
from dlfp.scratch.network import Network, build_patch_mlp
from dlfp.scratch.sgd import SGD
from dlfp.viz.classification import plot_classification

PATCH_MLP = "dlfp.models.patch_mlp.PatchMLP"
TORCH_SGD = "torch.optim.SGD"


def run(cfg: DictConfig, run: Run) -> dict[str, float]:
    _check_supported(cfg, run)
    data: ImageData = instantiate(cfg.dataset)
    net = build_network(cfg.model, data, seed=cfg.seed)

    train_loader = InMemoryLoader(data.train, cfg.train.batch_size, data.mean, data.std,
                                  shuffle=True, seed=cfg.seed)
    eval_loaders = {
        split: InMemoryLoader(s, cfg.train.eval_batch_size, data.mean, data.std, shuffle=False)
        for split, s in data.eval_splits.items()
    }
    steps = total_steps(cfg.train, len(train_loader))
    sgd = SGD(net.parameters(), lr=float(cfg.optimizer.lr), momentum=float(cfg.optimizer.momentum),
              weight_decay=float(cfg.optimizer.weight_decay), nesterov=bool(cfg.optimizer.nesterov))

    def evaluate_val(net: Network) -> dict[str, dict[str, float]]:
        return {"val": evaluate(net, eval_loaders["val"], data.num_classes)[0]}

    with cpu_threads(cfg.hardware.threads):
        result = fit(net, train_loader, evaluate_val, run=run, sgd=sgd,
                     lr_factor=lr_factor(cfg.schedule, steps), steps=steps, train_cfg=cfg.train,
                     resume=cfg.resume)
        scores, confusions = score_splits(lambda ld: evaluate(net, ld, data.num_classes), eval_loaders)
    summary = {"steps": float(result.steps), **scores}
    run.timings["train_seconds"] = result.train_seconds
    plot_classification(run.metrics.records(), confusions, data.classes, data.name, run.plots_dir)
    return summary


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
    if model_cfg.image_size % model_cfg.patch_size:
        raise DlfpError(
            f"model.image_size={model_cfg.image_size} is not a multiple of "
            f"model.patch_size={model_cfg.patch_size}"
        )
    return build_patch_mlp(
        model_cfg.in_channels, model_cfg.image_size, model_cfg.patch_size, model_cfg.embed_channels,
        list(model_cfg.hidden), model_cfg.num_classes, rng=np.random.default_rng(seed), dtype=dtype,
    )


def evaluate(net: Network, loader: InMemoryLoader, num_classes: int) -> tuple[dict[str, float], np.ndarray]:
    """Mean cross-entropy, error and accuracy over a split, and its confusion matrix."""
    loss_fn = SoftmaxCrossEntropy()
    loss_sum, confusion = 0.0, np.zeros((num_classes, num_classes), dtype=np.int64)
    for x, y in loader.epoch(0):
        logits = net.forward(x.numpy())
        labels = y.numpy()
        loss_fn.forward(logits, labels)
        loss_sum += float(loss_fn.losses.sum(dtype=np.float64))
        confusion += confusion_matrix(labels, logits.argmax(1), num_classes)
    return classification_metrics(loss_sum, confusion), confusion


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Run NumPy's BLAS and torch (here it only gathers batches) on ``hardware.threads`` threads, or 1.

    One thread is the default because this network's operations are small (a 32 x 392 by 392 x 256
    product takes a fraction of a millisecond on one core): extra threads mostly synchronise, and
    when other processes load the machine, spinning BLAS/OpenMP threads make a step many times
    slower (see the README). Torch's setting is restored afterwards.
    """
    n = 1 if threads is None else int(threads)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)


def _check_supported(cfg: DictConfig, run: Run) -> None:
    if cfg.model.get("_target_") != PATCH_MLP:
        raise DlfpError(
            f"task scratch_nn builds the NumPy version of model=patch_mlp only (got "
            f"{cfg.model.get('_target_')}); use model=patch_mlp or task=classify"
        )
    if cfg.optimizer.get("_target_") != TORCH_SGD:
        raise DlfpError(
            f"the NumPy network trains with SGD only (got {cfg.optimizer.get('_target_')}); "
            "use optimizer=sgd (momentum, nesterov and weight_decay are supported)"
        )
    if run.hw.device.type != "cpu":
        raise DlfpError(
            f"the NumPy network runs on the CPU only, but hardware selected {run.hw.device}; "
            "use hardware=cpu"
        )
