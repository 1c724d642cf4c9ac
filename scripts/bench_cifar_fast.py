"""Test accuracy of ``experiment=cifar_fast`` against wall time: one full run per epoch budget.

    DLFP_DATA=<folder holding CIFAR-10> .venv/bin/python scripts/bench_cifar_fast.py \
        --epochs 7 15 [--seeds 0] [--threads 2] [--device cpu|cuda] [--out /tmp/bench_cifar_fast] \
        [--experiment cifar_fast_cpu] [Hydra overrides...]

Each budget is its own run of the experiment (the lr schedule spans the budget), in a subprocess
with ``hardware.threads`` fixed, one after the other. Columns: the run's training seconds; its wall
seconds from config to summary (data load, whitening, training, and the test-time-augmented test
evaluation); the process's wall seconds including Python start-up and imports; test accuracy.
The load average is printed before and after each run: anything else running makes them slower.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[7, 15])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_cifar_fast"))
    parser.add_argument("--experiment", default="cifar_fast", choices=["cifar_fast", "cifar_fast_cpu"])
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for every run")
    args = parser.parse_args()
    if not os.environ.get("DLFP_DATA"):
        sys.exit("set DLFP_DATA to the folder that holds CIFAR-10")
    print(f"experiment={args.experiment}, device {args.device}, hardware.threads {args.threads}, "
          f"data {os.environ['DLFP_DATA']}", flush=True)
    print(f"{'epochs':>6} {'seed':>4} {'train s':>8} {'run s':>7} {'process s':>9} {'test acc':>8} "
          f"{'load before/after':>17}", flush=True)
    for epochs in args.epochs:
        for seed in args.seeds:
            run_dir = args.out / f"epochs{epochs}_seed{seed}"
            load_before = os.getloadavg()[0]
            began = time.perf_counter()
            subprocess.run([sys.executable, "-m", "dlfp.train", f"experiment={args.experiment}",
                            f"hardware={args.device}", f"hardware.threads={args.threads}",
                            f"train.epochs={epochs}", f"seed={seed}", "dataset.download=false",
                            f"hydra.run.dir={run_dir}", *args.overrides],
                           check=True, stdout=subprocess.DEVNULL)
            process = time.perf_counter() - began
            summary = json.loads((run_dir / "summary.json").read_text())
            print(f"{epochs:>6} {seed:>4} {summary['timings']['train_seconds']:>8.0f} "
                  f"{summary['wall_seconds']:>7.0f} {process:>9.0f} "
                  f"{summary['metrics']['test/accuracy']:>8.4f} "
                  f"{load_before:>8.2f}/{os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
