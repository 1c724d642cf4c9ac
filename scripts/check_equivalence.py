"""Prove the NumPy MNIST network computes what its PyTorch twin computes, in float64.

    .venv/bin/python scripts/check_equivalence.py [--steps 100] [--batch-size 32] [--data mnist5k|random]

The NumPy network is initialised from a seeded generator and its weights copied into a ``PatchMLP``.
On the first batch the logits, the loss and every parameter gradient must agree to 1e-10; then both
take ``--steps`` plain SGD steps on the same batches (the training loader's first batches of real
MNIST digits by default) and every step's loss must agree to 1e-8. Differences are relative to
scale (max |numpy - torch| / max |torch| per array). Exits with status 1 on any failure.
"""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from dlfp.data.loader import Loader
from dlfp.data.mnist5k import load_mnist5k
from dlfp.data.transforms import build_transforms
from dlfp.scratch.twin import Batch, check_equivalence


def mnist5k_batches(steps: int, batch_size: int, seed: int) -> list[Batch]:
    """The first ``steps`` batches the mnist_nn runs train on (same loader, same seed), as float64."""
    data = load_mnist5k("mnist5k")
    loader = Loader(data.train, batch_size, shuffle=True, seed=seed,
                    transforms=build_transforms(["standardize"], data))
    epochs = (loader.epoch(e) for e in itertools.count())
    batches = itertools.islice(itertools.chain.from_iterable(epochs), steps)
    return [(b["x"].numpy().astype(np.float64), b["y"].numpy()) for b in batches]


def random_batches(steps: int, batch_size: int, seed: int) -> list[Batch]:
    rng = np.random.default_rng(seed + 1)
    return [(rng.standard_normal((batch_size, 1, 28, 28)), rng.integers(0, 10, batch_size))
            for _ in range(steps)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="NumPy init and batch order")
    parser.add_argument("--data", choices=["mnist5k", "random"], default="mnist5k")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be at least 1")

    make = mnist5k_batches if args.data == "mnist5k" else random_batches
    batches = make(args.steps, args.batch_size, args.seed)
    torch.set_num_threads(1)  # tiny float64 products: threads only add noise
    with threadpool_limits(limits=1, user_api="blas"):
        report = check_equivalence(batches, lr=args.lr, seed=args.seed)
    print(f"NumPy vs PyTorch, float64, {args.data} batches of {args.batch_size}, lr {args.lr}, "
          f"seed {args.seed}")
    print("\n".join(report.lines()))
    print(f"\nloss at step 1: {report.losses[0]:.6f}, at step {report.steps}: {report.losses[-1]:.6f}")
    if not report.passed:
        print("FAILED: NumPy and PyTorch disagree", file=sys.stderr)
        return 1
    print("equivalent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
