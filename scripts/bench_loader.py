"""Is the loader a bottleneck? Training steps/s with it vs on pre-made tensors.

Both columns train the same model (the default PatchMLP, SGD) on the same device and threads. The
"tensors" column cycles through batches that were gathered and standardised before timing, so it
is the speed of the model alone; the "loader" column gets every batch from ``dlfp.data.loader.Loader``
with the ``standardize`` transform, as training does. Rounds alternate between the two so drift in
machine load hits both alike.

    .venv/bin/python scripts/bench_loader.py [--device cpu] [--batch-sizes 32 256] [--steps 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time

import torch

from dlfp.data.loader import Loader
from dlfp.data.mnist5k import load_mnist5k
from dlfp.data.transforms import build_transforms
from dlfp.models import model_from_schema


def steps_per_second(model, opt, batches, steps: int, device: torch.device) -> float:
    it = iter(batches)
    start = time.perf_counter()
    for _ in range(steps):
        batch = next(it)
        loss = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def loader_vs_premade(model, opt, loader: Loader, *, steps: int, rounds: int, warmup: int,
                      premade: int, device: torch.device) -> tuple[float, float]:
    """Median training steps/s with batches from ``loader`` and on ``premade`` batches gathered
    from it before timing, in alternating rounds (shared with scripts/bench_cifar.py)."""
    stream = lambda: (b for e in itertools.count() for b in loader.epoch(e))  # noqa: E731
    made = list(itertools.islice(stream(), premade))
    steps_per_second(model, opt, stream(), warmup, device)
    with_loader, without = [], []
    for _ in range(rounds):
        with_loader.append(steps_per_second(model, opt, stream(), steps, device))
        without.append(steps_per_second(model, opt, itertools.cycle(made), steps, device))
    return statistics.median(with_loader), statistics.median(without)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = load_mnist5k()
    train = data.train.to(device)
    standardize = build_transforms(["standardize"], data)
    print(f"device {device}, torch {torch.__version__}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f}, {args.steps} steps x {args.rounds} rounds, median steps/s")
    print(f"{'batch':>6} {'loader':>10} {'tensors':>10} {'ratio':>7}")
    for bs in args.batch_sizes:
        torch.manual_seed(0)
        model = model_from_schema("patch_mlp").to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        loader = Loader(train, bs, shuffle=True, seed=0, transforms=standardize)
        a, b = loader_vs_premade(model, opt, loader, steps=args.steps, rounds=args.rounds, warmup=50,
                                 premade=64, device=device)
        print(f"{bs:>6} {a:>10.0f} {b:>10.0f} {a / b:>7.3f}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
