"""Training images/s of each CIFAR model, with the loader and its on-device augmentation vs on
pre-made tensors (ratio >= 0.9 is the target), side by side in one run.

    .venv/bin/python scripts/bench_cifar.py [--models allcnn_t resnet18] [--threads 2] [--steps 3]
        [--rounds 3] [--device cpu|cuda] [--channels-last]

The pipeline is the one ``experiment=cifar_allcnn`` composes (flip, reflect-padded crop, colour
jitter, standardize), on CIFAR-10 when ``DLFP_DATA`` holds it and on the generated
``cifar_synthetic`` otherwise (the speed does not depend on the pixels). Each round times
``--steps`` training steps of batch 128 with batches from the loader, then as many on batches
made before timing; rounds alternate so drift in machine load hits both alike.
"""

from __future__ import annotations

import argparse
import os

import torch
from bench_loader import loader_vs_premade  # scripts/ is on the path of a script run from it
from hydra import compose, initialize_config_dir

from dlfp.config import CONF_DIR, register_configs
from dlfp.data import load_dataset
from dlfp.data.loader import Loader
from dlfp.data.transforms import build_transforms
from dlfp.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["allcnn_t", "resnet18"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="NHWC model and batches (default: on CUDA only)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    channels_last = device.type == "cuda" if args.channels_last is None else args.channels_last
    register_configs()
    dataset = "cifar10" if os.environ.get("DLFP_DATA") else "cifar_synthetic"
    overrides = ["experiment=cifar_allcnn", f"dataset={dataset}"]
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides + (["dataset.download=false"] if dataset == "cifar10" else []))
    data = load_dataset(cfg.dataset)
    pipeline = (build_transforms(cfg.dataset.augment, data, "dataset.augment")
                + build_transforms(cfg.dataset.transforms, data))
    loader = Loader(data.train.to(device), 128, shuffle=True, seed=0, transforms=pipeline)
    print(f"device {device}, channels_last {channels_last}, torch {torch.__version__}, torch threads "
          f"{torch.get_num_threads()}, data "
          f"{data.name}, load average {os.getloadavg()[0]:.2f}, {args.steps} steps x {args.rounds} "
          "rounds of batch 128, median images/s")
    print(f"{'model':<10} {'loader':>8} {'tensors':>8} {'ratio':>6}")
    for name in args.models:
        with initialize_config_dir(CONF_DIR, version_base="1.3"):
            model_cfg = compose("train", [f"model={name}"]).model
        torch.manual_seed(0)
        model = build_model(model_cfg).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        a, b = (128 * v for v in loader_vs_premade(model, opt, loader, steps=args.steps, rounds=args.rounds,
                                                    warmup=1, premade=args.steps, device=device))
        print(f"{name:<10} {a:>8.1f} {b:>8.1f} {a / b:>6.3f}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
