"""Training step time of a CIFAR model eager against ``torch.compile`` (``hardware.compile=true``),
side by side in one run, on one fixed thread count.

    .venv/bin/python scripts/bench_compile.py [--model fastnet] [--batch 1024] [--threads 2] [--steps 3]
        [--rounds 3] [--channels-last | --no-channels-last] [--device cpu|cuda] ['model.widths=[64,128,128]']

Both copies of the model start from the same weights and train on the same generated batches (the
speed does not depend on the pixels) with the fast recipe's step: the model's own loss (its
cross-entropy, label-smoothed 0.2), compiled as ``TorchUpdate`` compiles it (``LossOf``), SGD with
Nesterov momentum. The compiled copy first takes ``--warmup`` untimed steps (the
compilation, timed separately); then the rounds alternate eager and compiled, ``--steps`` steps
each, so that drift in the machine's load hits both alike. Prints the median images/s of each and
their ratio, the thread count and the load average before and after.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable

import torch
from hydra import compose, initialize_config_dir

from dlfp.config import CONF_DIR, register_configs
from dlfp.engine.updates import LossOf
from dlfp.models import build_model


def timed_steps(loss: Callable[[dict[str, torch.Tensor]], torch.Tensor], opt: torch.optim.Optimizer,
                x: torch.Tensor, y: torch.Tensor, steps: int, device: torch.device) -> float:
    """Seconds for ``steps`` training steps on the batch (x, y)."""
    began = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss({"x": x, "y": y}).backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fastnet")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("overrides", nargs="*", help="model overrides, e.g. model.widths=[64,128,128]")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    register_configs()
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        model_cfg = compose("train", [f"model={args.model}", *args.overrides]).model
    torch.manual_seed(0)
    eager = build_model(model_cfg).to(device)
    eager.label_smoothing = 0.2
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (args.batch,), generator=gen).to(device)
    if hasattr(eager, "fit_to_data"):
        eager.fit_to_data(x[:512])
    memory = torch.channels_last if args.channels_last else torch.contiguous_format
    eager = eager.to(memory_format=memory)
    x = x.contiguous(memory_format=memory)
    twin = copy.deepcopy(eager)
    compiled = torch.compile(LossOf(twin))
    opts = {name: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.85, nesterov=True)
            for name, m in (("eager", eager), ("compiled", twin))}
    model_name = " ".join([args.model, *args.overrides])
    print(f"model {model_name}, batch {args.batch}, device {device}, channels_last {args.channels_last}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"load average before {os.getloadavg()[0]:.2f}", flush=True)
    compile_seconds = timed_steps(compiled, opts["compiled"], x, y, args.warmup, device)
    timed_steps(eager.loss, opts["eager"], x, y, 1, device)
    print(f"compilation and {args.warmup} warm-up steps: {compile_seconds:.1f} s", flush=True)
    rates: dict[str, list[float]] = {"eager": [], "compiled": []}
    for round_ in range(args.rounds):
        for name, loss in (("eager", eager.loss), ("compiled", compiled)):
            seconds = timed_steps(loss, opts[name], x, y, args.steps, device)
            rates[name].append(args.steps * args.batch / seconds)
        print(f"round {round_}: eager {rates['eager'][-1]:.1f} images/s, compiled "
              f"{rates['compiled'][-1]:.1f}", flush=True)
    eager_rate, compiled_rate = (statistics.median(rates[k]) for k in ("eager", "compiled"))
    print(f"median images/s: eager {eager_rate:.1f}, compiled {compiled_rate:.1f}, "
          f"ratio compiled/eager {compiled_rate / eager_rate:.3f}; "
          f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
