"""Seconds per SGD step of the NumPy MNIST network and of its PyTorch twin, side by side, on the CPU.

    .venv/bin/python scripts/bench_scratch.py [--batch-sizes 32 256] [--threads 1] [--dtype float32]

A step is forward + softmax cross-entropy + backward + SGD update, on the study's network
(28x28 -> 4x4 patch embedding to 7x7x8 -> 256 ReLU -> 10). Both start from the same weights (the
twin is a copy) and train on the same pre-made batches (the torch tensors share the NumPy arrays'
memory), so the loader is not measured. Thread count is the same for both: torch intra-op threads
via ``torch.set_num_threads`` and NumPy's BLAS via ``threadpoolctl``. After a warm-up, timed rounds
of ``--steps`` steps alternate between the two so that changes in machine load hit both alike; the
table reports the median round. Ratio = NumPy / PyTorch (below 1: NumPy is faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from dlfp.scratch.loss import SoftmaxCrossEntropy
from dlfp.scratch.network import build_patch_mlp
from dlfp.scratch.sgd import SGD
from dlfp.scratch.twin import torch_twin

Step = Callable[[int], None]


def make_steps(
    batch_size: int, dtype: np.dtype, lr: float, seed: int, distinct: int = 8
) -> tuple[Step, Step]:
    """One step function per implementation, over the same ``distinct`` batches cycled."""
    rng = np.random.default_rng(seed)
    net = build_patch_mlp(rng=rng, dtype=dtype)
    model = torch_twin(net)
    xs = [rng.standard_normal((batch_size, 1, 28, 28)).astype(dtype) for _ in range(distinct)]
    ys = [rng.integers(0, 10, batch_size) for _ in range(distinct)]
    txs, tys = [torch.from_numpy(x) for x in xs], [torch.from_numpy(y) for y in ys]
    loss_fn, sgd = SoftmaxCrossEntropy(), SGD(net.parameters(), lr)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)

    def numpy_step(i: int) -> None:
        loss_fn.forward(net.forward(xs[i % distinct]), ys[i % distinct])
        net.backward(loss_fn.backward())
        sgd.step()

    def torch_step(i: int) -> None:
        loss = model.loss({"x": txs[i % distinct], "y": tys[i % distinct]})
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return numpy_step, torch_step


def seconds_per_step(step: Step, steps: int) -> float:
    began = time.perf_counter()
    for i in range(steps):
        step(i)
    return (time.perf_counter() - began) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--threads", type=int, nargs="+", default=[1],
                        help="thread counts to measure (each used by both implementations)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--steps", type=int, default=100, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per implementation")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps first")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"CPU: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; dtype "
          f"{args.dtype}; median of {args.rounds} alternating rounds of {args.steps} steps")
    print(f"torch {torch.__version__}, numpy {np.__version__} (BLAS threads set with threadpoolctl)\n")
    header = (f"{'threads':>7}  {'batch':>5}  {'NumPy ms/step':>13}  {'PyTorch ms/step':>15}  "
              f"{'NumPy/PyTorch':>13}")
    print(header)
    print("-" * len(header))
    for threads in args.threads:
        torch.set_num_threads(threads)
        with threadpool_limits(limits=threads, user_api="blas"):
            for batch_size in args.batch_sizes:
                numpy_step, torch_step = make_steps(batch_size, np.dtype(args.dtype), 0.01, args.seed)
                seconds_per_step(numpy_step, args.warmup)
                seconds_per_step(torch_step, args.warmup)
                times: dict[str, list[float]] = {"numpy": [], "torch": []}
                for _ in range(args.rounds):
                    times["numpy"].append(seconds_per_step(numpy_step, args.steps))
                    times["torch"].append(seconds_per_step(torch_step, args.steps))
                ours, theirs = statistics.median(times["numpy"]), statistics.median(times["torch"])
                print(f"{threads:>7}  {batch_size:>5}  {ours * 1e3:>13.3f}  {theirs * 1e3:>15.3f}  "
                      f"{ours / theirs:>13.2f}", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end (other processes on the machine add noise)")


if __name__ == "__main__":
    main()
