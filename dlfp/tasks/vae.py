"""Variational autoencoder on binarised 14x14 MNIST, with importance-weighted log-likelihood estimates.

Recipe: choose a class-balanced training set and a small validation set, binarise them, train the
VAE on the negative ELBO with the shared loop (reconstruction, KL and ELBO logged every update, the
validation ELBO every ``train.eval_every``), then report the final ELBO and IWAE bounds on log p(x)
and draw the figures. Every log-likelihood is per image in nats.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from dlfp.data import Split, load_dataset
from dlfp.data.binarized import BinaryImages, load_binarized
from dlfp.data.loader import Loader
from dlfp.engine.driver import fit
from dlfp.engine.optim import build_optimizer
from dlfp.engine.run import Run
from dlfp.engine.updates import TorchUpdate
from dlfp.errors import DlfpError
from dlfp.models import build_model
from dlfp.models.vae import VAE, elbo_terms, gaussian_kl, iwae_bound
from dlfp.viz.mosaic import plot_image_grid
from dlfp.viz.vae import (
    plot_elbo_terms,
    plot_latent_traversal,
    plot_reconstructions,
    plot_train_vs_val_ll,
)


def run(cfg: DictConfig, run: Run) -> dict[str, float]:
    hw, vcfg = run.hw, cfg.vae
    data = load_binarized(load_dataset(cfg.dataset), vcfg.data).to(hw.device)
    model: VAE = build_model(cfg.model, mc_samples=vcfg.mc_samples)  # a training setting: see VAE
    if model.input_dim != data.train.shape[1]:
        raise DlfpError(
            f"model.input_dim={model.input_dim} but the {data.side}x{data.side} images have "
            f"{data.train.shape[1]} pixels; set model.input_dim={data.train.shape[1]}"
        )
    model.to(hw.device)
    if not 0 < cfg.train.batch_size <= len(data.train):
        raise DlfpError(f"train.batch_size={cfg.train.batch_size} must be between 1 and the "
                        f"{len(data.train)} images")
    loader = Loader(Split(x=data.train), cfg.train.batch_size, shuffle=True, seed=cfg.seed,
                    rank=hw.ranks.rank, world_size=hw.ranks.world_size)
    eval_noise = lambda: torch.Generator(hw.device).manual_seed(vcfg.eval_seed)  # noqa: E731

    def evaluate_val(net: VAE) -> dict[str, dict[str, float]]:
        return {"val": elbo_metrics(net, data.val, vcfg.eval_mc_samples, eval_noise(),
                                    cfg.train.eval_batch_size)}

    update = TorchUpdate(model, build_optimizer(cfg.optimizer, model), hw, cfg.train)
    result = fit(update, loader, evaluate_val, run=run, train_cfg=cfg.train, schedule=cfg.schedule,
                 resume=cfg.resume)
    if not hw.ranks.is_main:  # rank 0 alone scores, plots and writes
        return {}

    model.eval()
    summary: dict[str, float] = {"steps": float(result.steps), "train_images": float(len(data.train))}
    with torch.no_grad():
        for split, x in (("train", data.train), ("val", data.val)):
            metrics = elbo_metrics(model, x, vcfg.eval_mc_samples, eval_noise(),
                                   cfg.train.eval_batch_size)
            summary.update({f"{split}/{name}": value for name, value in metrics.items()})
        for k in vcfg.iwae_k:
            summary[f"val/iwae_{k}"] = mean_iwae(model, data.val, k, vcfg.iwae_chunk,
                                                 eval_noise(), cfg.train.eval_batch_size)
    _plot(run, model, data, vcfg)
    return summary


def elbo_metrics(
    model: VAE, x: torch.Tensor, samples: int, generator: torch.Generator, batch_size: int
) -> dict[str, float]:
    """Mean ELBO, reconstruction log-likelihood and KL per image (nats) over the rows of x."""
    recon_sum = kl_sum = 0.0
    for xb in x.split(batch_size):
        recon, kl = elbo_terms(model, xb, samples, generator=generator)
        recon_sum += recon.sum().item()
        kl_sum += kl.sum().item()
    n = len(x)
    return {"elbo": (recon_sum - kl_sum) / n, "recon_ll": recon_sum / n, "kl": kl_sum / n}


def mean_iwae(
    model: VAE, x: torch.Tensor, k: int, chunk: int, generator: torch.Generator, batch_size: int
) -> float:
    """The IWAE-k lower bound on log p(x), averaged over the rows of x (nats per image)."""
    total = sum(iwae_bound(model, xb, k, chunk=chunk, generator=generator).sum().item()
                for xb in x.split(batch_size))
    return total / len(x)


def _plot(run: Run, model: VAE, data: BinaryImages, vcfg: DictConfig) -> None:
    side = data.side
    as_images = lambda rows: rows.reshape(-1, side, side).float().cpu().numpy()  # noqa: E731
    train, val = run.metrics.records("train"), run.metrics.records("val")
    plot_elbo_terms(train, run.plots_dir / "elbo_terms.png")
    plot_train_vs_val_ll(train, val, run.plots_dir / "train_vs_val_ll.png")
    with torch.no_grad():
        evenly = torch.linspace(0, len(data.val) - 1, 8, device=data.val.device).long()
        spread = torch.argsort(data.val_labels, stable=True)[evenly]
        originals = data.val[spread]  # eight validation images across the digits
        plot_reconstructions(as_images(originals), as_images(model(originals)),
                             run.plots_dir / "reconstructions.png")
        generator = torch.Generator(data.val.device).manual_seed(vcfg.eval_seed)
        z = torch.randn((vcfg.num_samples, model.latent_dim), generator=generator,
                        device=data.val.device)
        means = model.decode(z)
        threshold = vcfg.sample_threshold
        shown = (means > threshold).float() if threshold is not None else means
        what = f"thresholded at {threshold}" if threshold is not None else "Bernoulli means"
        plot_image_grid(as_images(shown), run.plots_dir / "samples.png",
                        title=f"samples: z ~ N(0, I), decoded, {what}")
        grid, offsets, dims = latent_traversal(model, data.val, vcfg.traversal)
        plot_latent_traversal(as_images(grid.flatten(0, 1)).reshape(*grid.shape[:2], side, side),
                              offsets, dims, run.plots_dir / "latent_traversal.png")


def latent_traversal(
    model: VAE, x: torch.Tensor, cfg: DictConfig
) -> tuple[torch.Tensor, list[float], list[int]]:
    """Decoded means over a grid in two latent dimensions around the average posterior mean of x.

    Without ``cfg.dims``, the two dimensions with the largest average KL are used: the ones the
    model actually encodes information in (inactive ones decode to the same image everywhere).
    """
    mu, logvar = model.encode(x)
    if cfg.dims is not None:
        dims = list(cfg.dims)
        if max(dims) >= model.latent_dim or min(dims) < 0:
            raise DlfpError(f"vae.traversal.dims={dims} must lie in 0..{model.latent_dim - 1}")
    else:
        per_dim_kl = gaussian_kl(mu.unsqueeze(-1), logvar.unsqueeze(-1)).mean(0)
        dims = per_dim_kl.topk(2).indices.tolist()
    offsets = torch.linspace(-cfg.span, cfg.span, cfg.steps, device=x.device)
    z = mu.mean(0).repeat(len(offsets), len(offsets), 1)
    z[:, :, dims[0]] += offsets[:, None]
    z[:, :, dims[1]] += offsets[None, :]
    return model.decode(z), offsets.tolist(), dims

