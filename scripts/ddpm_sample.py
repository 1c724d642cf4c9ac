"""Samples of a trained DDPM from its checkpoint alone, and (optionally) their quality table.

    python scripts/ddpm_sample.py <run dir> --sampler ddim --steps 50 --n 64 --seed 0 [--out grid.png]
    python scripts/ddpm_sample.py <run dir> --sampler ddpm --n 16 --trajectory denoising.png
    python scripts/ddpm_sample.py <run dir> --quality <mnist_cnn run dir> --samples 1000 \
        [--ddim-steps 100 50 20 10] [--no-ddpm] [--vae <vae run dir>] [--threads 2] [--out-dir DIR]

The checkpoint's model config rebuilds the model with its noise process (T, the schedule) and the
image size and channels it was trained on; its EMA weights are used unless ``--raw``, and the run's
``ddpm`` section gives the sampler's defaults (eta, clipping, variance). The grid goes to ``--out``
(without it: ddpm_samples.png, unless ``--trajectory`` names the only figure wanted). ``--quality`` runs the
experiment's own quality evaluation (dlfp/eval/diffusion_quality.py ``quality_table``) and writes
``quality.md``, ``quality.json`` and ``metrics.jsonl`` into ``--out-dir``. The numeric flags have
the ranges of the ``ddpm`` keys they stand for (dlfp/config/ddpm.py), and every flag and path is
checked before the checkpoint loads; a failure leaves no folder behind.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from dlfp.config.checks import ToolParser, option_type
from dlfp.config.ddpm import DDPMSectionConfig, QualityConfig
from dlfp.config.hardware import HardwareConfig
from dlfp.data import load_dataset
from dlfp.engine.checkpoint import load_trained
from dlfp.engine.hardware import setup_hardware
from dlfp.engine.metrics import MetricLog
from dlfp.engine.run import Run
from dlfp.errors import DlfpError
from dlfp.eval.diffusion_quality import check_quality_inputs, quality_table
from dlfp.models import rebuild_model
from dlfp.models.diffusion import Diffusion
from dlfp.viz.diffusion import display_images, plot_denoising
from dlfp.viz.figure_file import check_directory, check_figure_path
from dlfp.viz.mosaic import plot_image_grid

DEFAULT_OUT = Path("ddpm_samples.png")


def parser() -> ToolParser:
    def ddpm(name: str) -> Callable[[str], Any]:
        return option_type(DDPMSectionConfig, name)

    def quality_flag(name: str) -> Callable[[str], Any]:
        return option_type(QualityConfig, name)

    p = ToolParser(prog="ddpm_sample.py", description=__doc__.splitlines()[0])
    p.add_argument("path", type=Path, help="a run directory of experiment=ddpm or its checkpoint")
    p.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddim")
    p.add_argument("--steps", type=ddpm("grid_sampler_steps"), default=None, help="DDIM steps S (default T)")
    p.add_argument("--eta", type=ddpm("eta"), default=None, help="DDIM stochasticity (default: the run's)")
    p.add_argument("--n", type=ddpm("grid_images"), default=64, help="images in the grid")
    p.add_argument("--seed", type=ddpm("sample_seed"), default=0)
    p.add_argument("--out", type=Path, default=None, help=f"the grid (default {DEFAULT_OUT}, unless "
                   "--trajectory is given)")
    p.add_argument("--trajectory", type=Path, default=None, help="the denoising figure")
    p.add_argument("--raw", action="store_true", help="the last weights instead of their EMA")
    p.add_argument("--no-clip", action="store_true", help="do not clip the predicted x_0 to [-1, 1]")
    p.add_argument("--quality", default=None, help="score samples with this experiment=mnist_cnn run")
    p.add_argument("--samples", type=quality_flag("samples"), default=None, help="images per quality row")
    p.add_argument("--ddim-steps", type=quality_flag("ddim_steps"), nargs="*", default=None)
    p.add_argument("--no-ddpm", action="store_true", help="leave ancestral DDPM out of the table")
    p.add_argument("--vae", default=None, help="a run of experiment=vae: its samples as a row")
    p.add_argument("--out-dir", type=Path, default=Path("ddpm_quality"))
    p.add_argument("--threads", type=option_type(HardwareConfig, "threads"), default=1)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        figures = {} if args.quality else figure_paths(args)
        if args.quality:
            check_directory(args.out_dir, "--out-dir")
        checkpoint = load_trained(args.path, "ddpm")
        model = trained_model(checkpoint, args)
        cfg = run_config(checkpoint)
        if args.quality:
            quality_settings(args, cfg)
            check_quality_inputs(cfg, model.schedule.steps)
            return quality(args, cfg, model)
        check_steps(args, model.schedule.steps)
        return samples(args, cfg.ddpm, model, figures)
    except (DlfpError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def trained_model(checkpoint: dict[str, Any], args: argparse.Namespace) -> Diffusion:
    """The checkpoint's model, with its EMA weights unless ``--raw``."""
    model = rebuild_model(checkpoint)
    if not isinstance(model, Diffusion):
        raise DlfpError(f"{args.path} holds a {type(model).__name__}, not a Diffusion model: it was written "
                        "before the noise process moved into the model (model.timesteps); train it again")
    ema = checkpoint.get("task", {}).get("ema")
    if ema is not None and not args.raw:
        model.load_state_dict(ema["model"])
    return model


def run_config(checkpoint: dict[str, Any]) -> DictConfig:
    """The run's config, its ``ddpm`` section typed by its schema as the task read it."""
    cfg = OmegaConf.create(json.loads(checkpoint["config"]))
    cfg.ddpm = OmegaConf.merge(OmegaConf.structured(DDPMSectionConfig), cfg.ddpm)
    return cfg


def figure_paths(args: argparse.Namespace) -> dict[str, Path]:
    """The figures asked for ({"grid": ..., "trajectory": ...}), each a file matplotlib can write
    where a file can be made."""
    wanted = {"grid": args.out or (None if args.trajectory else DEFAULT_OUT), "trajectory": args.trajectory}
    flags = {"grid": "--out", "trajectory": "--trajectory"}
    for name, path in wanted.items():
        if path is not None:
            check_figure_path(path, flags[name])
    return {name: path for name, path in wanted.items() if path is not None}


def check_steps(args: argparse.Namespace, timesteps: int) -> None:
    """``--steps`` against the sampler and the run's T, before any sampling."""
    if args.steps is None:
        return
    if args.sampler == "ddpm":
        raise DlfpError(f"--steps {args.steps}: ancestral DDPM runs all T={timesteps} steps; leave --steps "
                        "out, or use --sampler ddim")
    if args.steps > timesteps:
        raise DlfpError(f"--steps {args.steps}: DDIM takes at most the run's T={timesteps} steps "
                        f"(model.timesteps); use --steps {timesteps} or fewer")


def samples(args: argparse.Namespace, dcfg: DictConfig, model: Diffusion, figures: dict[str, Path]) -> int:
    """``--n`` samples of the model's own image shape, drawn into the figures asked for."""
    generator = torch.Generator().manual_seed(args.seed)
    eta = dcfg.eta if args.eta is None else args.eta
    began = time.perf_counter()
    images, trajectory = model.sample(args.n, sampler=args.sampler, steps=args.steps, eta=eta,
                                      variance=dcfg.variance, generator=generator,
                                      clip=dcfg.clip and not args.no_clip,
                                      keep=8 if "trajectory" in figures else 0)
    seconds = time.perf_counter() - began
    steps = model.schedule.steps if args.sampler == "ddpm" or args.steps is None else args.steps
    title = f"{args.sampler.upper()}, {steps} steps" + (f", eta {eta:g}" if args.sampler == "ddim" else "")
    for path in figures.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    if "grid" in figures:
        plot_image_grid(display_images(images), figures["grid"], title=f"{title}, seed {args.seed}")
    if "trajectory" in figures:
        rows = np.stack([display_images(x[:6]) for _, x in trajectory], axis=1)  # (6, snapshots, H, W)
        plot_denoising(rows, [t for t, _ in trajectory], figures["trajectory"], sampler=title)
    print(f"wrote {args.n} samples to {', '.join(map(str, figures.values()))} ({seconds:.1f} s, "
          f"{seconds / args.n:.3f} s per image)")
    return 0


def quality_settings(args: argparse.Namespace, cfg: DictConfig) -> None:
    """The run's ``ddpm.quality`` section with the flags' values in it."""
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
    if args.eta is not None:
        q.ddim_etas = [args.eta]
    if args.no_clip:
        cfg.ddpm.clip = False
    cfg.hardware.threads = args.threads


def quality(args: argparse.Namespace, cfg: DictConfig, model: Diffusion) -> int:
    """The quality table into ``--out-dir``; the folder is removed again if this fails and made it."""
    hw = setup_hardware(cfg.hardware)
    made = not args.out_dir.exists()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    try:
        run = Run(cfg=cfg, dir=args.out_dir, hw=hw, metrics=MetricLog(args.out_dir / "metrics.jsonl"))
        flat = quality_table(run, cfg, model.to(hw.device), load_dataset(cfg.dataset))
    except BaseException:
        if made:
            shutil.rmtree(args.out_dir, ignore_errors=True)
        raise
    print((args.out_dir / "quality.md").read_text())
    (args.out_dir / "quality.json").write_text(json.dumps(flat, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
