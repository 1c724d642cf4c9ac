"""Samples of a trained DDPM from its checkpoint alone, and (optionally) their quality table.

    python scripts/ddpm_sample.py <run dir> --sampler ddim --steps 50 --n 64 --seed 0 [--out grid.png]
    python scripts/ddpm_sample.py <run dir> --sampler ddpm --n 16 --trajectory denoising.png
    python scripts/ddpm_sample.py <run dir> --quality <mnist_cnn run dir> --samples 1000 \
        [--ddim-steps 100 50 20 10] [--no-ddpm] [--vae <vae run dir>] [--threads 2] [--out-dir DIR]

The checkpoint holds the UNet's constructor arguments, its EMA weights (used unless ``--raw``) and
the run's config (noise schedule, T, clipping, variance). ``--quality`` runs the experiment's own
quality evaluation (dlfp/tasks/ddpm.py ``quality_table``) and writes ``quality.md`` and
``metrics.jsonl`` into ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dlfp.engine.checkpoint import load_trained
from dlfp.engine.diffusion import noise_schedule, sample
from dlfp.engine.hardware import setup_hardware
from dlfp.engine.metrics import MetricLog
from dlfp.engine.run import Run
from dlfp.errors import DlfpError
from dlfp.models import rebuild_model
from dlfp.tasks.ddpm import display_images, quality_table
from dlfp.viz.diffusion import plot_denoising
from dlfp.viz.mosaic import plot_image_grid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a run directory of experiment=ddpm or its checkpoint")
    parser.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddim")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps S (default T)")
    parser.add_argument("--eta", type=float, default=None, help="DDIM stochasticity (default: the run's)")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("ddpm_samples.png"))
    parser.add_argument("--trajectory", type=Path, default=None, help="also write the denoising figure")
    parser.add_argument("--raw", action="store_true", help="the last weights instead of their EMA")
    parser.add_argument("--no-clip", action="store_true", help="do not clip the predicted x_0 to [-1, 1]")
    parser.add_argument("--quality", default=None, help="score samples with this experiment=mnist_cnn run")
    parser.add_argument("--samples", type=int, default=None, help="images per quality row")
    parser.add_argument("--ddim-steps", type=int, nargs="*", default=None)
    parser.add_argument("--no-ddpm", action="store_true", help="leave ancestral DDPM out of the table")
    parser.add_argument("--vae", default=None, help="a run of experiment=vae: its samples as a row")
    parser.add_argument("--out-dir", type=Path, default=Path("ddpm_quality"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        checkpoint = load_trained(args.path, "ddpm")
        model = rebuild_model(checkpoint)
        ema = checkpoint.get("task", {}).get("ema")
        if ema is not None and not args.raw:
            model.load_state_dict(ema["model"])
        cfg = OmegaConf.create(json.loads(checkpoint["config"]))
        dcfg = cfg.ddpm
        schedule = noise_schedule(str(dcfg.noise), int(dcfg.timesteps))
        if args.quality:
            return quality(args, cfg, schedule, model)
        generator = torch.Generator().manual_seed(args.seed)
        began = time.perf_counter()
        channels = int(json.loads(checkpoint["model_config"]).get("in_channels", 1))
        images, trajectory = sample(model, schedule, (args.n, channels, 28, 28), sampler=args.sampler,
                                    steps=args.steps,
                                    eta=float(dcfg.eta if args.eta is None else args.eta),
                                    variance=str(dcfg.variance), generator=generator,
                                    clip=bool(dcfg.clip) and not args.no_clip,
                                    keep=8 if args.trajectory else 0)
    except (DlfpError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - began
    steps = schedule.steps if args.sampler == "ddpm" or args.steps is None else args.steps
    args.out.parent.mkdir(parents=True, exist_ok=True)
    title = f"{args.sampler.upper()}, {steps} steps, seed {args.seed}"
    plot_image_grid(display_images(images), args.out, title=title)
    if args.trajectory:
        rows = np.stack([display_images(x[:6]) for _, x in trajectory], axis=1)  # (6, snapshots, 28, 28)
        plot_denoising(rows, [t for t, _ in trajectory], args.trajectory)
    print(f"wrote {args.n} samples to {args.out} ({seconds:.1f} s, {seconds / args.n:.3f} s per image)")
    return 0


def quality(args: argparse.Namespace, cfg, schedule, model) -> int:
    q = cfg.ddpm.quality
    q.classifier = str(args.quality)
    if args.samples is not None:
        q.samples = args.samples
    if args.ddim_steps is not None:
        q.ddim_steps = args.ddim_steps
    if args.no_ddpm:
        q.ddpm = False
    if args.vae:
        q.vae = str(args.vae)
    q.ddim_etas = [args.eta] if args.eta is not None else q.get("ddim_etas", [0.0, 1.0])
    if args.no_clip:
        cfg.ddpm.clip = False
    cfg.hardware.threads = args.threads
    hw = setup_hardware(cfg.hardware)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    run = Run(cfg=cfg, dir=args.out_dir, hw=hw, metrics=MetricLog(args.out_dir / "metrics.jsonl"))
    flat = quality_table(run, cfg, schedule, model.to(hw.device), instantiate(cfg.dataset))
    print((args.out_dir / "quality.md").read_text())
    (args.out_dir / "quality.json").write_text(json.dumps(flat, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
