"""Draw images from a trained VAE without training: z ~ N(0, I), decoded to Bernoulli means.

    python scripts/vae_sample.py outputs/vae/<date>/<time> --n 64 --out samples.png [--seed 1]
        [--threshold 0.5]
    python scripts/vae_sample.py path/to/checkpoint.pt ...

The checkpoint alone rebuilds the model (it holds the model's constructor arguments and the run's
config); it loads with ``torch.load(weights_only=True)``. The numeric flags have the ranges of the
``vae`` keys they stand for (dlfp/config/vae.py), and every flag and the output path are checked
before the checkpoint loads.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dlfp.config.checks import ToolParser, option_type
from dlfp.config.vae import VAESectionConfig
from dlfp.engine.checkpoint import load_trained
from dlfp.errors import DlfpError
from dlfp.models import rebuild_model
from dlfp.models.vae import VAE
from dlfp.viz.figure_file import check_figure_path
from dlfp.viz.mosaic import plot_image_grid


def load_vae(path: Path) -> VAE:
    """The VAE of a checkpoint file, or of a run directory's ``checkpoints/last.pt``, in eval mode
    on the CPU."""
    return rebuild_model(load_trained(path, "vae"))


def sample(model: VAE, n: int, seed: int, threshold: float | None = None) -> torch.Tensor:
    """n images (n, side, side): Bernoulli means decoded from z ~ N(0, I), optionally binarised."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        means = model.decode(torch.randn((n, model.latent_dim), generator=gen))
    images = (means > threshold).float() if threshold is not None else means
    side = math.isqrt(model.input_dim)
    return images.reshape(n, side, side)


def main(argv: list[str] | None = None) -> int:
    def vae(name: str) -> Callable[[str], Any]:
        return option_type(VAESectionConfig, name)

    parser = ToolParser(prog="vae_sample.py", description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a run directory of experiment=vae, or a checkpoint file")
    parser.add_argument("--n", type=vae("num_samples"), default=64, help="number of samples (default 64)")
    parser.add_argument("--out", type=Path, default=Path("vae_samples.png"), help="PNG to write")
    parser.add_argument("--seed", type=vae("eval_seed"), default=0, help="seed of the latent draws")
    parser.add_argument("--threshold", type=vae("sample_threshold"), default=None,
                        help="binarise the Bernoulli means at this value (default: show the means)")
    args = parser.parse_args(argv)
    try:
        check_figure_path(args.out, "--out")
        model = load_vae(args.path)
        images = sample(model, args.n, args.seed, args.threshold)
    except DlfpError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    what = f"thresholded at {args.threshold}" if args.threshold is not None else "Bernoulli means"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    title = f"{args.n} samples, z ~ N(0, I), seed {args.seed}, {what}"
    plot_image_grid(images.numpy(), args.out, title=title)
    print(f"wrote {args.n} samples to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
