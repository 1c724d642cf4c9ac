"""Train the PyPI ``airbench`` package's airbench94 (or airbench93) on the CIFAR-10 copy dlfp
reads and print its test accuracy and seconds per run: the reference ``experiment=cifar_fast`` is
measured against, on a GPU (scripts/gpu_cifar.sh runs both in one call) or on this CPU.

    DLFP_DATA=<folder holding CIFAR-10> python3 scripts/airbench_compare.py [--runs 3] \
        [--variant 94|93|muon] [--reference airbench94_muon.py] [--epochs E] [--device cuda|cpu] \
        [--threads 2] [--work /tmp/airbench]

``--variant muon`` runs the current record trainer, airbench94_muon (the control of
``experiment=cifar_fast_muon``), from the published file given by ``--reference``: the PyPI
package does not ship it, and nothing of it is part of dlfp. ``--epochs`` does not apply to it.

airbench reads ``cifar10/train.pt`` and ``cifar10/test.pt`` under the working directory (and would
download CIFAR-10 otherwise); they are written here from dlfp's decoded copy, so both trainers see
the same images. The training images are written in a seeded random order: airbench fits its
whitening on the first 5,000, and a folder-read CIFAR-10 is sorted by class. Timed per run:
``train94`` (whitening, 9.9 epochs; no per-epoch evaluation) plus the evaluation with its flip +
translate test-time augmentation, after one warm-up run on CUDA.

``--device cpu`` runs airbench's own code unchanged in fp32 on the CPU: its CUDA-only calls (the
half-precision cast, ``.cuda()``, CUDA events) are replaced around it, nothing inside the step.
It is the control for the CPU measurements in docs/cifar.md: the same images, the same thread
count, airbench's code instead of dlfp's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

import torch

from dlfp.data.cifar import CLASSES, load_cifar10


def export_for_airbench(folder: Path) -> None:
    """dlfp's CIFAR-10 (all 50,000 training images, shuffled; the 10,000 test images) in airbench's
    format: uint8 images (N, 32, 32, 3), labels, class names."""
    data = load_cifar10(os.environ["DLFP_DATA"], download=False, val_size=0)
    order = torch.randperm(len(data.train.y), generator=torch.Generator().manual_seed(0))
    folder.mkdir(parents=True, exist_ok=True)
    for name, (x, y) in (("train.pt", (data.train.x[order], data.train.y[order])),
                         ("test.pt", (data.test.x, data.test.y))):
        torch.save({"images": x.permute(0, 2, 3, 1).contiguous(), "labels": y,
                    "classes": list(CLASSES)}, folder / name)


class _WallClockEvent:
    """``torch.cuda.Event(enable_timing=True)`` for the CPU: airbench's train() times itself."""

    def record(self) -> None:
        self.at = time.perf_counter()

    def elapsed_time(self, end: _WallClockEvent) -> float:
        return 1e3 * (end.at - self.at)


@contextlib.contextmanager
def _module_casts_disabled():
    """airbench's make_net ends with ``.half().cuda()``: keep the net in fp32 on the CPU."""
    module = torch.nn.Module
    saved = module.half, module.cuda
    module.half = module.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        module.half, module.cuda = saved


def run_on_cpu(airbench) -> type:
    """Point airbench's CUDA-only calls at the CPU, in fp32; returns its loader class for the CPU."""
    base = airbench.utils.CifarLoader

    class CpuCifarLoader(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "gpu": "cpu"})
            self.images = self.images.float()

    airbench.utils.CifarLoader = CpuCifarLoader
    torch.cuda.Event = lambda **kwargs: _WallClockEvent()
    torch.cuda.synchronize = lambda *args: None
    return CpuCifarLoader


def load_muon_reference(path: Path, device: str):
    """airbench94_muon.py (the published file; not part of dlfp) as a module. On the CPU its
    CUDA-only calls are replaced: ``torch.load(map_location=cuda)`` loads to the CPU, CUDA events
    time by the wall clock, the net stays fp32 (``.half()``/``.cuda()`` are no-ops when it is built),
    the loader's fp16 images become fp32, and ``@torch.compile`` on its Newton-Schulz function is
    left out (dlfp runs eager on the CPU too)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("airbench94_muon", path)
    module = importlib.util.module_from_spec(spec)
    if device == "cpu":
        compile_, load = torch.compile, torch.load
        torch.compile = lambda fn=None, **kwargs: fn if fn is not None else (lambda f: f)
        torch.load = lambda *args, **kwargs: load(*args, **{**kwargs, "map_location": "cpu"})
        try:
            spec.loader.exec_module(module)
        finally:
            torch.compile = compile_
        base = module.CifarLoader

        class CpuCifarLoader(base):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.images = self.images.float()

        module.CifarLoader = CpuCifarLoader
        torch.cuda.Event = lambda **kwargs: _WallClockEvent()
        torch.cuda.synchronize = lambda *args: None
    else:
        spec.loader.exec_module(module)
    return module


def run_muon(args: argparse.Namespace) -> None:
    """airbench94_muon's own ``main`` per run; its own timer (whitening, the 8 epochs and the final
    flip + translate evaluation, not the per-epoch evaluations) is the seconds reported."""
    if args.reference is None or not args.reference.is_file():
        sys.exit("--variant muon needs --reference PATH to airbench94_muon.py "
                 "(KellerJordan/cifar10-airbench)")
    module = load_muon_reference(args.reference.resolve(), args.device)
    export_for_airbench(args.work / "cifar10")
    os.chdir(args.work)
    timed = {}
    show = module.print_training_details

    def record(variables, is_final_entry):
        timed["seconds"] = variables.get("time_seconds")
        show(variables, is_final_entry)

    module.print_training_details = record
    with _module_casts_disabled():
        model = module.CifarNet()
    model = model.to("cuda" if args.device == "cuda" else "cpu").to(memory_format=torch.channels_last)
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"the CPU, {args.threads} threads"
    print(f"airbench94_muon ({args.reference}) on {where}, load average {os.getloadavg()[0]:.2f}", flush=True)
    accuracies, seconds = [], []
    for run in range(args.runs):
        torch.manual_seed(run)
        accuracies.append(float(module.main(run, model)))
        seconds.append(timed["seconds"])
        print(f"airbench94_muon run {run}: test accuracy {accuracies[-1]:.4f}, {seconds[-1]:.1f} s, "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"airbench94_muon on {where}: mean test accuracy {statistics.mean(accuracies):.4f} over "
          f"{args.runs} runs, median {statistics.median(seconds):.1f} s per run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variant", default="94", choices=["94", "93", "muon"])
    parser.add_argument("--reference", type=Path, default=None,
                        help="airbench94_muon.py, for --variant muon (the PyPI package does not ship it)")
    parser.add_argument("--epochs", type=float, default=None, help="airbench's own count when unset")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--threads", type=int, default=2, help="torch threads on the CPU")
    parser.add_argument("--work", type=Path, default=Path("/tmp/airbench"))
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA GPU here: use --device cpu")
    if not os.environ.get("DLFP_DATA"):
        sys.exit("set DLFP_DATA to the folder that holds CIFAR-10")
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    if args.variant == "muon":
        return run_muon(args)
    import airbench

    train_fn = getattr(airbench, f"train{args.variant}")
    make_net = getattr(airbench, f"make_net{args.variant}")
    loader_class = airbench.CifarLoader
    if args.device == "cpu":
        loader_class = run_on_cpu(airbench)

        def cpu_net():
            with _module_casts_disabled():
                return make_net()
    export_for_airbench(args.work / "cifar10")
    os.chdir(args.work)  # airbench's loaders read ./cifar10
    train_loader = loader_class("cifar10", train=True, batch_size=1024,
                                aug={"flip": True, "translate": 2}, altflip=True)
    test_loader = loader_class("cifar10", train=False, batch_size=2000)
    options = {"train_loader": train_loader, "verbose": False,
               **({"epochs": args.epochs} if args.epochs else {}),
               **({"make_net": cpu_net} if args.device == "cpu" else {})}
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"the CPU, {args.threads} threads"
    print(f"airbench{args.variant} (airbench {version('airbench')}) on {where}, epochs "
          f"{args.epochs or 'default'}, load average {os.getloadavg()[0]:.2f}", flush=True)
    if args.device == "cuda":
        train_fn(**options)  # warm-up: cuDNN autotuning
    accuracies, seconds = [], []
    for run in range(args.runs):
        torch.manual_seed(run)
        if args.device == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        model = train_fn(**options)
        accuracy = airbench.evaluate(model, test_loader, tta_level=2)
        if args.device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - began)
        accuracies.append(float(accuracy))
        print(f"airbench{args.variant} run {run}: test accuracy {accuracies[-1]:.4f}, "
              f"{seconds[-1]:.1f} s, load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"airbench{args.variant} on {where}: mean test accuracy {statistics.mean(accuracies):.4f} "
          f"over {args.runs} runs, median {statistics.median(seconds):.1f} s per run")


if __name__ == "__main__":
    main()
