"""Sampling time of a trained DDPM: ancestral DDPM with all T steps against DDIM with S steps,
side by side in one process, on one fixed thread count.

    python scripts/bench_ddpm_samplers.py <ddpm run dir> [--n 64] [--steps 50] [--rounds 2] [--threads 2]

Each round times DDPM (T steps), then DDIM with eta 0 and eta 1 (S steps), on the same batch of
``--n`` images (EMA weights, seeded noise); a warm-up pass of a few steps comes first so that no
contender pays for the first convolution calls. Prints seconds per image of each and the ratios
DDPM / DDIM, per round and as the median over rounds, with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from dlfp.engine.checkpoint import load_trained
from dlfp.models import rebuild_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = load_trained(args.path, "ddpm")
    model = rebuild_model(checkpoint)
    model.load_state_dict(checkpoint["task"]["ema"]["model"])
    cfg = json.loads(checkpoint["config"])["ddpm"]  # the run's sampler settings; the model holds the process
    schedule = model.schedule

    def seconds(sampler: str, steps: int | None, eta: float) -> float:
        began = time.perf_counter()
        model.sample(args.n, sampler=sampler, steps=steps, eta=eta, variance=cfg["variance"],
                     generator=torch.Generator().manual_seed(0), clip=cfg["clip"])
        return (time.perf_counter() - began) / args.n

    print(f"{args.path}: T={schedule.steps}, DDIM S={args.steps}, {args.n} images, threads {args.threads}, "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    seconds("ddim", 5, 1.0)  # warm-up
    ratios: dict[str, list[float]] = {"eta0": [], "eta1": []}
    for r in range(args.rounds):
        ddpm = seconds("ddpm", None, 0.0)
        ddim = {"eta0": seconds("ddim", args.steps, 0.0), "eta1": seconds("ddim", args.steps, 1.0)}
        for k, v in ddim.items():
            ratios[k].append(ddpm / v)
        print(f"round {r}: s per image DDPM {ddpm:.4f}, DDIM eta 0 {ddim['eta0']:.4f}, "
              f"eta 1 {ddim['eta1']:.4f}; DDPM/DDIM eta 0 {ddpm / ddim['eta0']:.2f}x, "
              f"eta 1 {ddpm / ddim['eta1']:.2f}x", flush=True)
    print(f"median over {args.rounds} rounds: DDPM/DDIM eta 0 {statistics.median(ratios['eta0']):.2f}x, "
          f"eta 1 {statistics.median(ratios['eta1']):.2f}x (network evaluations: "
          f"{schedule.steps / args.steps:.1f}x); load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
