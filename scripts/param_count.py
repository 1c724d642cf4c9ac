"""Parameters of each CIFAR model, layer by layer and in total (the study's param_count.py).

    .venv/bin/python scripts/param_count.py [allcnn_t resnet18 resnet34 resnet50 fastnet] [--layers]

Builds each model from its conf/model/<name>.yaml (so the counts are those the experiments train)
and prints its total, its convolution weights and, with --layers, one line per parameter tensor.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import OmegaConf
from torch import nn

from dlfp.config import CONF_DIR
from dlfp.config.model import SCHEMAS
from dlfp.models import build_model

MODELS = ["allcnn_t", "resnet18", "resnet34", "resnet50", "fastnet"]


def counts(model: nn.Module) -> tuple[int, int, int]:
    """(all parameters, trained parameters, convolution weights)."""
    conv = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return sum(p.numel() for p in model.parameters()), trained, conv


def model_from_conf(name: str) -> nn.Module:
    cfg = OmegaConf.load(Path(CONF_DIR) / "model" / f"{name}.yaml")
    schema = cfg.pop("defaults")[0]["/schema/model@_here_"]
    return build_model(OmegaConf.merge(OmegaConf.structured(SCHEMAS["model"][schema]), cfg))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help=f"any of {', '.join(MODELS)} (default: all)")
    parser.add_argument("--layers", action="store_true", help="one line per parameter tensor")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    print(f"{'model':<10} {'parameters':>12} {'trained':>12} {'conv weights':>13}")
    for name in args.models or MODELS:
        model = model_from_conf(name)
        total, trained, conv = counts(model)
        print(f"{name:<10} {total:>12,} {trained:>12,} {conv:>13,}")
        if args.layers:
            for key, p in model.named_parameters():
                print(f"    {key:<40} {str(tuple(p.shape)):<20} {p.numel():>10,}")


if __name__ == "__main__":
    main()
