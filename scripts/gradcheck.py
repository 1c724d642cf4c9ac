"""Check every hand-written gradient of the NumPy MNIST network against finite differences.

    .venv/bin/python scripts/gradcheck.py                 # the study's network, every entry (~1-2 min)
    .venv/bin/python scripts/gradcheck.py --sample 2000   # at most 2,000 random entries per tensor

Each layer of the network is checked alone, on the activations it receives in the network, then the
loss and the whole network end to end; float64, central differences with h = 1e-6. Prints one row
per tensor with its max relative error (defined in dlfp/scratch/gradcheck.py: the worst absolute
difference over the tensor divided by the tensor's gradient scale) and exits with status 1 if any
is >= 1e-6. BLAS runs on one thread: the products are tiny and threads only add noise.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from dlfp.scratch.gradcheck import STEP, GradCheck, check_layer, check_loss, check_network, format_table
from dlfp.scratch.layers import ReLU
from dlfp.scratch.network import build_patch_mlp


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="weights, inputs and labels")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--sample", type=int, default=None,
                        help="check at most this many random entries per tensor (default: all)")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--embed-channels", type=int, default=8)
    parser.add_argument("--hidden", type=int, nargs="*", default=[256])
    parser.add_argument("--num-classes", type=int, default=10)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    net = build_patch_mlp(1, args.image_size, args.patch_size, args.embed_channels, args.hidden,
                          args.num_classes, rng=rng, dtype=np.float64)
    x = rng.standard_normal((args.batch_size, 1, args.image_size, args.image_size))
    labels = rng.integers(0, args.num_classes, args.batch_size)
    print(f"network (float64, seed {args.seed}, batch {args.batch_size}):\n{net}\n")

    began = time.perf_counter()
    rows: list[GradCheck] = []
    with threadpool_limits(limits=1, user_api="blas"):
        activation = x
        for layer in net.layers:
            inputs = activation
            if isinstance(layer, ReLU):  # finite differences straddling the kink are meaningless
                inputs = np.where(np.abs(inputs) < 100 * STEP, np.copysign(100 * STEP, inputs), inputs)
            name = f"{layer.name or '-'} ({type(layer).__name__})"
            print(f"checking {name} ...", file=sys.stderr, flush=True)
            rows += check_layer(layer, inputs, rng=rng, sample=args.sample, target=name)
            activation = layer.forward(inputs).copy()
        rows += check_loss(activation, labels)
        print("checking the whole network (the longest part) ...", file=sys.stderr, flush=True)
        rows += check_network(net, x, labels, rng=rng, sample=args.sample)
    print(format_table(rows))
    failed = [r for r in rows if not r.ok]
    worst = max(rows, key=lambda r: r.rel_error)
    print(f"\n{len(rows)} tensors, {sum(r.checked for r in rows):,} entries checked in "
          f"{time.perf_counter() - began:.1f} s; worst {worst.rel_error:.2e} ({worst.target} {worst.tensor})")
    if failed:
        print(f"FAILED: {len(failed)} tensors at or above the tolerance", file=sys.stderr)
        return 1
    print("all gradients agree with finite differences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
