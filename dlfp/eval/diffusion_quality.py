"""The DDPM study's sample quality: samples of each sampler scored by a trained classifier (Fréchet
distance, class entropy, confidence, seconds per image) beside real images and, optionally, a VAE's
samples. The task runs it after training and ``scripts/ddpm_sample.py`` on a saved run; its inputs
are checked before any data loads (``check_quality_inputs``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from dlfp.data import ImageData
from dlfp.data.transforms import unit_pixels
from dlfp.engine.checkpoint import load_trained
from dlfp.engine.progress import Progress
from dlfp.engine.run import Run
from dlfp.errors import DlfpError
from dlfp.eval.sample_quality import Scored, class_counts, quality, score_images
from dlfp.eval.trained_classifier import check_trained, load_classifier
from dlfp.models import rebuild_model
from dlfp.models.diffusion import Diffusion

log = logging.getLogger(__name__)


def check_quality_inputs(cfg: DictConfig, timesteps: int) -> None:
    """Before any data loads: what the quality table reads after training (the trained classifier
    and VAE, the DDIM step counts against the model's T, ``timesteps``) must exist and fit, or the
    whole training is lost to a typo."""
    qcfg = cfg.ddpm.quality
    if not qcfg.classifier:
        return
    check_trained(qcfg.classifier, "classify", cfg.dataset, "ddpm.quality.classifier")
    if qcfg.vae:
        check_trained(qcfg.vae, "vae", cfg.dataset, "ddpm.quality.vae")
    too_many = [s for s in qcfg.ddim_steps if s > timesteps]
    if too_many:
        raise DlfpError(f"ddpm.quality.ddim_steps={list(qcfg.ddim_steps)}: {too_many} exceed "
                        f"model.timesteps={timesteps} (DDIM takes at most T steps); use steps <= {timesteps}")


def quality_table(run: Run, cfg: DictConfig, model: Diffusion, data: ImageData) -> dict[str, float]:
    """One row of measures per sampler (and the sanity rows), logged as ``quality`` records and
    returned flat: ``<row>/frechet``, ``<row>/seconds_per_image``, ..."""
    qcfg, device = cfg.ddpm.quality, run.hw.device
    classifier, _ = load_classifier(qcfg.classifier, cfg.paths.data_dir, device, need_data=False)
    reference_split = data.test if data.test is not None else data.val
    reference_pixels = unit_pixels(reference_split.x[: qcfg.reference_images])
    reference = score_images(classifier, reference_pixels.to(device))
    n, batch = qcfg.samples, qcfg.batch_size
    rows: dict[str, tuple[Scored, float]] = {}
    train_pixels = unit_pixels(data.train.x)
    chosen = torch.randperm(len(train_pixels), generator=torch.Generator().manual_seed(0))[:n]
    rows["real_train"] = (score_images(classifier, train_pixels[chosen].to(device)), 0.0)
    samplers = ([("ddpm", None, 0.0)] if qcfg.ddpm else []) + [
        ("ddim", s, eta) for s in qcfg.ddim_steps for eta in qcfg.ddim_etas]
    for sampler, steps, eta in samplers:
        name = f"ddpm_T{model.schedule.steps}" if sampler == "ddpm" else f"ddim_S{steps}_eta{eta:g}"
        began = time.perf_counter()
        generated = generate(model, cfg.ddpm, sampler, steps, eta, n, batch)
        seconds = time.perf_counter() - began
        rows[name] = (score_images(classifier, (generated + 1) / 2), seconds / n)
        log.info("%s: %d images in %.1f s", name, n, seconds)
    if qcfg.vae:
        vae = vae_pixels(qcfg.vae, n, cfg.ddpm.sample_seed, device)
        rows["vae"] = (score_images(classifier, vae), 0.0)
    flat: dict[str, float] = {}
    for name, (scored, per_image) in rows.items():
        measures = {**quality(scored, reference, qcfg.bootstrap, cfg.seed),
                    "seconds_per_image": per_image}
        run.metrics.log(0, "quality", row=float(list(rows).index(name)), **measures)
        flat.update({f"{name}/{k}": v for k, v in measures.items()})
        log.info("%s: Frechet %.2f ± %.2f, confidence %.3f, classes %s", name, measures["frechet"],
                 measures["frechet_std"], measures["confidence"], class_counts(scored))
    (run.dir / "quality.md").write_text(quality_markdown(rows, flat, n, len(reference.features)))
    return flat


def generate(model: Diffusion, dcfg: DictConfig, sampler: str, steps: int | None, eta: float, n: int,
             batch: int) -> torch.Tensor:
    """``n`` samples in [-1, 1], ``batch`` at a time, from the seeded noise of ``ddpm.sample_seed``
    (``eta``: DDIM's)."""
    generator = torch.Generator().manual_seed(dcfg.sample_seed)
    parts = []
    per_batch = model.schedule.steps if sampler == "ddpm" else steps
    progress = Progress(per_batch * -(-n // batch), desc=f"{sampler} {per_batch} steps, {n} images")
    for first in range(0, n, batch):
        x, _ = model.sample(min(batch, n - first), sampler=sampler, steps=steps, eta=eta,
                            variance=dcfg.variance, generator=generator, clip=dcfg.clip,
                            on_step=progress.tick)
        parts.append(x.clamp(-1, 1))
    progress.close()
    return torch.cat(parts)


def vae_pixels(path: str, n: int, seed: int, device: torch.device) -> torch.Tensor:
    """``n`` samples of a trained VAE (its Bernoulli means, 14x14) upsampled to 28x28 pixels in [0, 1]."""
    vae = rebuild_model(load_trained(Path(path).expanduser(), "vae")).to(device)
    side = int(round(vae.input_dim ** 0.5))
    z = torch.randn((n, vae.latent_dim), generator=torch.Generator().manual_seed(seed)).to(device)
    with torch.no_grad():
        means = vae.decode(z).reshape(n, 1, side, side)
    if side != 28:
        means = nn.functional.interpolate(means, size=(28, 28), mode="nearest")
    return means


def quality_markdown(rows: dict[str, Any], flat: dict[str, float], n: int, references: int) -> str:
    lines = [f"Sample quality: {n} images per row against {references} real reference images; Fréchet "
             "distance in the classifier's feature space (± bootstrap std), class entropy (max ln 10 = "
             "2.303), mean top-class confidence.", "",
             "| row | Fréchet | ± | class entropy | classes | confidence | s per image |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in rows:
        m = {k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith(f"{name}/")}
        lines.append(f"| {name} | {m['frechet']:.2f} | {m['frechet_std']:.2f} | {m['class_entropy']:.3f} | "
                     f"{m['classes_present']:.0f} | {m['confidence']:.3f} | {m['seconds_per_image']:.4f} |")
    return "\n".join(lines) + "\n"
