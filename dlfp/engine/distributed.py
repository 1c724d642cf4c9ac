"""Data-parallel training on PyTorch's own engine: ``torchrun --nproc_per_node=N -m dlfp.train ...``.

torchrun starts N copies of the program and tells each its place through the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``). dlfp joins them into one process
group (gloo for CPU tensors, NCCL for CUDA ones), wraps the model in ``DistributedDataParallel``,
shards each epoch's permutation by rank (``data.loader.Loader``), and lets rank 0 alone write the
run directory. Everything here is a no-op in a single process.
"""

from __future__ import annotations

import datetime
import functools
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from dlfp.errors import DlfpError


@dataclass(frozen=True)
class Ranks:
    """This process's place among the data-parallel processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # its index on this machine: which GPU it drives

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes metrics, checkpoints, figures and the summary."""
        return self.rank == 0


ONE_PROCESS = Ranks()


def ranks_from_environment() -> Ranks:
    """The ranks torchrun gave this process. In a job of several tasks started by submitit
    (``hydra/launcher=slurm_ddp`` on SLURM, ``submitit_local`` here) submitit's helper first derives
    torchrun's variables from the job's own."""
    if "RANK" not in os.environ and os.environ.get("SUBMITIT_EXECUTOR"):
        from submitit import JobEnvironment
        from submitit.helpers import TorchDistributedEnvironment

        if JobEnvironment().num_tasks > 1:
            TorchDistributedEnvironment().export(set_cuda_visible_devices=False)  # rank r drives GPU r
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        ranks = Ranks(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    except ValueError as e:
        raise DlfpError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers ({e}); start data-parallel "
                        "runs with torchrun --nproc_per_node=N -m dlfp.train ...") from None
    if not 0 <= ranks.rank < ranks.world_size:
        raise DlfpError(f"RANK={ranks.rank} must lie in [0, WORLD_SIZE={ranks.world_size})")
    return ranks


def join(ranks: Ranks) -> None:
    """Join the process group torchrun's variables describe (once per process). One group serves
    both devices: gloo carries CPU tensors, NCCL (created on first use) CUDA ones."""
    if not ranks.active or dist.is_initialized():
        return
    if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
        raise DlfpError("WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set; start data-parallel "
                        "runs with torchrun --nproc_per_node=N -m dlfp.train ...")
    if torch.cuda.is_available():
        torch.cuda.set_device(ranks.local_rank % torch.cuda.device_count())
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, rank=ranks.rank, world_size=ranks.world_size,
                            timeout=datetime.timedelta(minutes=30))


@functools.cache
def start_time() -> datetime.datetime:
    """When this run started, by rank 0's clock: the same on every rank."""
    ranks = ranks_from_environment()
    join(ranks)
    return broadcast(datetime.datetime.now())


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not dist.is_initialized():
        return [value]
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Each value averaged over the ranks: a train record of the whole global batch, and the same
    numbers (so the same stopping decisions) on every rank."""
    if not dist.is_initialized() or not values:
        return values
    summed = torch.tensor(list(values.values()), dtype=torch.float64)
    dist.all_reduce(summed)
    return dict(zip(values, (summed / dist.get_world_size()).tolist()))
