"""The training loop of the NumPy network: the engine's loop (``dlfp.engine.loop.fit``) without torch.

It keeps the engine's contract so the two runs compare line for line: the same update budget, the
same batches in the same order (the shared ``InMemoryLoader``), evaluation at step 0, every
``train.eval_every`` and at the end, ``{"loss", "lr"}`` train records every ``train.log_every``
(the mean loss over the window, the lr after the update as ``LambdaLR`` reports it), the same
non-finite-loss error, atomic checkpoints every ``train.checkpoint_every`` and exact resume.
Checkpoints are ``.npz`` files read with ``allow_pickle=False``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from dlfp.engine.checkpoint import check_resumable, raise_non_finite
from dlfp.engine.loop import BatchSource, batch_stream
from dlfp.run import Run
from dlfp.scratch.loss import SoftmaxCrossEntropy
from dlfp.scratch.network import Network
from dlfp.scratch.sgd import SGD

log = logging.getLogger(__name__)

Evaluate = Callable[[Network], dict[str, dict[str, float]]]
CHECKPOINT = "last.npz"


@dataclass
class FitResult:
    steps: int
    evaluation: dict[str, dict[str, float]]  # the last evaluation, at the final step
    train_seconds: float  # wall time of the updates in this process (excludes a resumed part)


def clip_grad_norm(grads: list[np.ndarray], max_norm: float) -> float:
    """Scale all gradients together so their global L2 norm is at most ``max_norm`` (torch's rule)."""
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    coef = max_norm / (norm + 1e-6)
    if coef < 1:
        for g in grads:
            g *= coef
    return norm


def fit(
    net: Network,
    loader: BatchSource,
    evaluate: Evaluate,
    *,
    run: Run,
    sgd: SGD,
    lr_factor: Callable[[int], float],
    steps: int,
    train_cfg: DictConfig,
    resume: bool = False,
) -> FitResult:
    """Minibatch SGD on the mean softmax cross-entropy; update k (0-based) uses lr * lr_factor(k)."""
    ckpt_path = run.checkpoint_dir / CHECKPOINT
    check_resumable(ckpt_path, run.dir, resume)
    start, running, count = _resume(ckpt_path, net, sgd, run) if resume else (0, 0.0, 0)
    per_epoch = len(loader)
    loss_fn = SoftmaxCrossEntropy()
    grads = [g for _, _, g in net.parameters()]

    def run_eval(step: int) -> dict[str, dict[str, float]]:
        results = evaluate(net)
        for split, metrics in results.items():
            run.metrics.log(step, split, epoch=round(step / per_epoch, 4), **metrics)
            shown = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            log.info("step %d/%d %s %s", step, steps, split, shown)
        return results

    results = run_eval(0) if start == 0 else {}
    batches = batch_stream(loader, start)
    print_every, printed_at = max(1, steps // 100), start
    on_terminal = sys.stderr.isatty()
    bar = tqdm(total=steps, initial=start, disable=not on_terminal, unit="step", dynamic_ncols=True)
    began = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run ends in the DlfpError below
        for step in range(start + 1, steps + 1):
            x, y = next(batches)
            loss = loss_fn.forward(net.forward(x.numpy()), y.numpy())
            net.backward(loss_fn.backward())
            if train_cfg.grad_clip is not None:
                clip_grad_norm(grads, float(train_cfg.grad_clip))
            sgd.step(sgd.lr * lr_factor(step - 1))
            running += loss
            count += 1
            bar.update(1)

            last = step == steps
            log_due = last or step % train_cfg.log_every == 0
            eval_due = last or step % train_cfg.eval_every == 0
            ckpt_due = last or step % train_cfg.checkpoint_every == 0
            if (log_due or eval_due or ckpt_due) and not math.isfinite(running / count):
                raise_non_finite(step, ckpt_path, "loss")
            if log_due:
                mean_loss, lr = running / count, sgd.lr * lr_factor(step)
                run.metrics.log(step, "train", epoch=round(step / per_epoch, 4), loss=mean_loss, lr=lr)
                bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
                if not on_terminal and (last or step - printed_at >= print_every):
                    log.info("step %d/%d train loss %.4f lr %.4g", step, steps, mean_loss, lr)
                    printed_at = step
                running, count = 0.0, 0
            if eval_due:
                results = run_eval(step)
            if ckpt_due:
                _save(ckpt_path, step, net, sgd, running, count)
    bar.close()
    seconds = time.perf_counter() - began
    if not results:  # resumed a run that had already finished
        results = run_eval(steps)
    return FitResult(steps=steps, evaluation=results, train_seconds=seconds)


def _save(path: Path, step: int, net: Network, sgd: SGD, window_sum: float, window_count: int) -> None:
    """Parameters, momentum buffers and the step, written to a temporary file and renamed into place."""
    arrays = {f"param/{k}": v for k, v in net.state_dict().items()}
    arrays.update({f"momentum/{k}": v for k, v in sgd.state_dict().items()})
    if not all(np.isfinite(v).all() for v in arrays.values()):
        raise_non_finite(step, path, "parameters")
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        # the open log window too, so a resumed run logs the same mean loss
        np.savez(f, step=np.int64(step), window_sum=np.float64(window_sum),
                 window_count=np.int64(window_count), **arrays)
    os.replace(tmp, path)


def _resume(path: Path, net: Network, sgd: SGD, run: Run) -> tuple[int, float, int]:
    """Load a checkpoint into ``net`` and ``sgd``; return its step and open log window (sum, count).

    The batch order needs no state: it is a function of the step."""
    with np.load(path, allow_pickle=False) as saved:
        net.load_state_dict({k[len("param/"):]: saved[k] for k in saved.files if k.startswith("param/")})
        sgd.load_state_dict({k[len("momentum/"):]: saved[k] for k in saved.files
                             if k.startswith("momentum/")})
        start = int(saved["step"])
        window = float(saved["window_sum"]), int(saved["window_count"])
    run.metrics.truncate_after(start)
    log.info("resumed from %s at step %d", path, start)
    return start, *window
