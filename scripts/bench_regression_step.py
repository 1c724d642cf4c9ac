"""Milliseconds per update of the regression MLP: autograd + torch.optim.SGD vs the hand-written step.

    .venv/bin/python scripts/bench_regression_step.py [--batch-sizes 10 21 64] [--threads 1]

The study's network (3 hidden ReLU layers of 256, standardised input) and optimiser (SGD, momentum
0.9, lr 0.01), on the CPU, one batch of uniform inputs per size. Both start from the same weights.
After a warm-up, timed rounds of ``--steps`` updates alternate between the two so that changes in
machine load hit both alike; the table reports the median round and the largest parameter
difference after the run (the two must compute the same updates). Ratio = autograd / hand-written.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable

import torch
from omegaconf import OmegaConf

from dlfp.data.regression1d import sin_10pi_x4
from dlfp.engine.hardware import setup_hardware
from dlfp.engine.updates import TorchUpdate
from dlfp.models.mlp import MLP
from dlfp.models.mlp_sgd import manual_step

CPU = setup_hardware(OmegaConf.create({"device": "cpu", "amp_dtype": None, "compile": False,
                                       "channels_last": False, "threads": None, "deterministic": True}))


def updaters(batch_size: int, seed: int) -> tuple[Callable[[], None], Callable[[], None], MLP, MLP]:
    torch.manual_seed(seed)
    x = torch.rand(batch_size, 1)
    y = sin_10pi_x4(x)
    first = MLP(input_mean=0.5, input_std=12 ** -0.5)
    nets = [first, copy.deepcopy(first)]
    calls = []
    for net, fast in zip(nets, (False, True)):
        optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        update = TorchUpdate(net, optimizer, CPU, OmegaConf.create({"grad_clip": None, "accumulate": 1}),
                             manual_step=manual_step(net, optimizer) if fast else None)  # as the task does
        calls.append(lambda update=update: update({"x": x, "y": y}))
    return calls[0], calls[1], nets[0], nets[1]


def seconds_per_update(call: Callable[[], None], steps: int) -> float:
    began = time.perf_counter()
    for _ in range(steps):
        call()
    return (time.perf_counter() - began) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 21, 64, 256])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), load average {os.getloadavg()[0]:.2f}, "
          f"median of {args.rounds} rounds of {args.steps} updates")
    print("| batch | autograd ms | hand-written ms | ratio | max param diff |")
    print("|---|---|---|---|---|")
    for batch in args.batch_sizes:
        autograd, fast, net_a, net_b = updaters(batch, seed=0)
        autograd(), fast()  # warm-up (and the first momentum buffers)
        times: dict[str, list[float]] = {"autograd": [], "fast": []}
        for _ in range(args.rounds):
            times["autograd"].append(seconds_per_update(autograd, args.steps))
            times["fast"].append(seconds_per_update(fast, args.steps))
        a, b = (statistics.median(times[k]) * 1e3 for k in ("autograd", "fast"))
        diff = max(float((p - q).abs().max()) for p, q in zip(net_a.state_dict().values(),
                                                             net_b.state_dict().values()))
        print(f"| {batch} | {a:.3f} | {b:.3f} | {a / b:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
