"""Training samples/s of dlfp's data-parallel update (``TorchUpdate`` under DDP, the sharded
``Loader``) for 1 and 2 gloo processes on the CPU, and 1..N GPUs when there are any, with the
scaling efficiency, measured side by side in one run.

    .venv/bin/python scripts/bench_ddp.py [--model small_cnn|fastnet] [--batch 64] [--steps 60]

Each configuration starts ``torchrun --nproc_per_node=P`` on this script's worker: P processes
with T torch threads each, a fixed batch per process (the global batch grows with P: weak scaling,
as DDP is used), ``--warmup`` updates, then ``--steps`` timed updates between two barriers. The
efficiency of P processes is their samples/s over P times one process's (with as many threads per
process). "1 process x 2 threads" is the other use of a second core, for comparison. The load
average is printed before and after: anything else running makes the numbers meaningless.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

import torch

SHAPES = {"small_cnn": (1, 28, 28), "fastnet": (3, 32, 32)}


def worker(args: argparse.Namespace) -> None:
    """One rank: build the model and data, time the updates, rank 0 prints samples/s as JSON."""
    import torch.distributed as dist
    from omegaconf import OmegaConf

    from dlfp.data.images import Split
    from dlfp.data.loader import Loader
    from dlfp.engine.distributed import join, ranks_from_environment
    from dlfp.engine.hardware import Hardware
    from dlfp.engine.updates import TorchUpdate
    from dlfp.models import model_from_schema

    torch.set_num_threads(args.threads)
    ranks = ranks_from_environment()
    join(ranks)
    device = torch.device("cuda", ranks.local_rank) if args.device == "cuda" else torch.device("cpu")
    torch.manual_seed(0)
    model = model_from_schema(args.model)  # small_cnn or fastnet, at its schema's defaults
    model.to(device)
    shape = SHAPES[args.model]
    n = args.batch * ranks.world_size * (args.warmup + args.steps)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, *shape, generator=gen), torch.randint(0, 10, (n,), generator=gen)
    split = Split(x=x, y=y).to(device)
    loader = Loader(split, args.batch, shuffle=True, seed=0, rank=ranks.rank, world_size=ranks.world_size)
    hw = Hardware(device=device, amp_dtype=torch.bfloat16 if args.device == "cuda" else None, compile=False,
                  channels_last=False, ranks=ranks)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    update = TorchUpdate(model, optimizer, hw, OmegaConf.create({}))
    batches = loader.epoch(0)
    for _ in range(args.warmup):
        update(next(batches))
    _sync(device, dist)
    began = time.perf_counter()
    for _ in range(args.steps):
        loss, _ = update(next(batches))
    float(loss)
    _sync(device, dist)
    seconds = time.perf_counter() - began
    if ranks.is_main:
        print(json.dumps({"samples_per_s": args.steps * args.batch * ranks.world_size / seconds,
                          "seconds": seconds}), flush=True)


def _sync(device: torch.device, dist) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if dist.is_initialized():
        dist.barrier()


def launch(args: argparse.Namespace, processes: int, threads: int, device: str) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
           "--master_addr=127.0.0.1", f"--master_port={port}", __file__, "--worker",
           f"--model={args.model}", f"--batch={args.batch}", f"--steps={args.steps}",
           f"--warmup={args.warmup}", f"--threads={threads}", f"--device={device}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["samples_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(SHAPES), default="small_cnn")
    parser.add_argument("--batch", type=int, default=64, help="per process")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"model {args.model}, batch {args.batch} per process, {args.steps} timed updates after "
          f"{args.warmup}; torch {torch.__version__}; load average before: {os.getloadavg()[0]:.2f}")
    rows = [("cpu", 1, 1), ("cpu", 1, 2), ("cpu", 2, 1)]
    if torch.cuda.is_available():
        rows += [("cuda", p, 1) for p in range(1, torch.cuda.device_count() + 1)]
    base: dict[tuple[str, int], float] = {}
    print(f"{'device':>6} {'processes':>9} {'threads/proc':>12} {'samples/s':>10} {'efficiency':>10}")
    for device, processes, threads in rows:
        rate = launch(args, processes, threads, device)
        if processes == 1:
            base.setdefault((device, threads), rate)
        one = base.get((device, threads))
        efficiency = f"{rate / (processes * one):.2f}" if one and processes > 1 else "-"
        print(f"{device:>6} {processes:>9} {threads:>12} {rate:>10.1f} {efficiency:>10}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
