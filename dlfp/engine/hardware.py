"""Turn the hardware config into a device and the switches the training loop uses."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import DictConfig
from threadpoolctl import threadpool_limits

from dlfp.engine.distributed import ONE_PROCESS, Ranks
from dlfp.errors import DlfpError


@dataclass(frozen=True)
class Hardware:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: full precision
    compile: bool
    channels_last: bool
    ranks: Ranks = ONE_PROCESS  # this process among the data-parallel ones (torchrun)
    sync_batchnorm: bool = False  # BatchNorm statistics over the global batch (CUDA, under torchrun)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def setup_hardware(cfg: DictConfig, ranks: Ranks = ONE_PROCESS) -> Hardware:
    """Pick the device and determinism; AMP applies on CUDA only, channels_last on any device
    (mkldnn's CPU convolutions are faster in it too: docs/cifar.md). Under torchrun each rank
    drives the GPU of its local rank."""
    wanted = str(cfg.device)
    if wanted == "cuda" and not torch.cuda.is_available():
        raise DlfpError("hardware=cuda but no CUDA device is available; use hardware=cpu or auto")
    use_cuda = wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available())
    device = torch.device("cpu")
    if use_cuda:
        device = torch.device("cuda", ranks.local_rank) if ranks.active else torch.device("cuda")
    sync_batchnorm = bool(cfg.get("sync_batchnorm", False))
    if sync_batchnorm and ranks.active and not use_cuda:
        raise DlfpError("hardware.sync_batchnorm=true needs CUDA (PyTorch's SyncBatchNorm has no CPU "
                        "kernel); on CPU keep the per-process BatchNorm (sync_batchnorm=false)")
    if cfg.deterministic:
        if use_cuda:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif use_cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    amp = None
    if use_cuda and cfg.amp_dtype is not None:
        amp = getattr(torch, str(cfg.amp_dtype))
    return Hardware(
        device=device,
        amp_dtype=amp,
        compile=bool(cfg.compile),
        channels_last=bool(cfg.channels_last),
        ranks=ranks,
        sync_batchnorm=sync_batchnorm,
    )


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """``hardware.threads``: the intra-op threads of torch and of NumPy's BLAS for the whole run
    (null keeps both libraries' defaults); both are restored afterwards.

    The small models of the MNIST, VAE and regression studies set 1: their operations are too
    small to share between cores, and on a busy machine extra spinning threads make a step many
    times slower (docs/design.md).
    """
    if threads is None:
        yield
        return
    if threads < 1:
        raise DlfpError(f"hardware.threads={threads} must be at least 1 (or null for the default)")
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        with threadpool_limits(limits=int(threads), user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)
