"""Train the PyPI ``airbench`` package's airbench94 on the CIFAR-10 copy dlfp reads, on this GPU,
and print its test accuracy and seconds per run: the reference ``experiment=cifar_fast`` is timed
against (scripts/gpu_cifar.sh runs both in one call).

    DLFP_DATA=<folder holding CIFAR-10> python3 scripts/airbench_compare.py [--runs 3] [--work /tmp/airbench]

airbench reads ``cifar10/train.pt`` and ``cifar10/test.pt`` under the working directory (and would
download CIFAR-10 otherwise); they are written here from dlfp's decoded copy, so both trainers see
the same images. Timed per run: ``train94`` (whitening, 9.9 epochs; no per-epoch evaluation) plus
the evaluation with its flip + translate test-time augmentation, after one warm-up run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from dlfp.data.cifar import CLASSES, load_cifar10


def export_for_airbench(folder: Path) -> None:
    """dlfp's CIFAR-10 (all 50,000 training images, the 10,000 test images) in airbench's format:
    uint8 images (N, 32, 32, 3), labels, class names."""
    data = load_cifar10(os.environ["DLFP_DATA"], download=False, val_size=0)
    folder.mkdir(parents=True, exist_ok=True)
    for name, split in (("train.pt", data.train), ("test.pt", data.test)):
        torch.save({"images": split.x.permute(0, 2, 3, 1).contiguous(), "labels": split.y,
                    "classes": list(CLASSES)}, folder / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/airbench"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("airbench needs a CUDA GPU")
    import airbench

    export_for_airbench(args.work / "cifar10")
    os.chdir(args.work)  # airbench's loaders read ./cifar10
    train_loader = airbench.CifarLoader("cifar10", train=True, batch_size=1024,
                                        aug={"flip": True, "translate": 2}, altflip=True)
    test_loader = airbench.CifarLoader("cifar10", train=False, batch_size=2000)
    airbench.train94(train_loader=train_loader, verbose=False)  # warm-up: cuDNN autotuning
    accuracies, seconds = [], []
    for run in range(args.runs):
        torch.cuda.synchronize()
        began = time.perf_counter()
        model = airbench.train94(train_loader=train_loader, verbose=False)
        accuracy = airbench.evaluate(model, test_loader, tta_level=2)
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - began)
        accuracies.append(float(accuracy))
        print(f"airbench94 run {run}: test accuracy {accuracies[-1]:.4f}, {seconds[-1]:.2f} s", flush=True)
    print(f"airbench94 on {torch.cuda.get_device_name()}: mean test accuracy "
          f"{statistics.mean(accuracies):.4f} over {args.runs} runs, "
          f"median {statistics.median(seconds):.2f} s per run")


if __name__ == "__main__":
    main()
