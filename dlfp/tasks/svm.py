"""Kernel SVMs on MNIST: raw 14x14 pixels against pooled Gabor filter responses.

Recipe: load the dataset (its training split, or the seeded stratified ``dataset.train_size``
subset of it: kernel SVMs cost the square of the training size), downsample every image to 14x14 by
2x2 area averaging, then for each feature set (raw pixels, Gabor) fit the same scikit-learn
pipeline (StandardScaler -> SVC, or an approximate kernel map -> LinearSVC) on the same images and
score it on the test split (the validation split when the dataset has no test split).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import torch
from omegaconf import DictConfig
from sklearn.kernel_approximation import Nystroem, RBFSampler
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from dlfp.data import ImageData, load_dataset
from dlfp.data.downsample import area_downsample
from dlfp.engine.run import Run
from dlfp.errors import DlfpError
from dlfp.features.gabor import GaborBank, gabor_bank, gabor_features
from dlfp.viz.confusion import plot_confusion
from dlfp.viz.gabor import plot_gabor_bank

log = logging.getLogger("dlfp")
FEATURE_TITLES = {"raw": "raw pixels", "gabor": "Gabor features"}


def run(cfg: DictConfig, run: Run) -> dict[str, float]:
    data: ImageData = load_dataset(cfg.dataset)
    train = data.train
    eval_split, evaluation = ("test", data.test) if data.test is not None else ("val", data.val)
    x_train = to_unit_images(train.x, cfg.svm.downsample)
    x_eval = to_unit_images(evaluation.x, cfg.svm.downsample)
    bank = build_bank(cfg.features, image_size=x_train.shape[-1])
    log.info("SVM on %d training images (%dx%d), scored on %s (%d images); Gabor bank of %d filters",
             len(train), x_train.shape[-2], x_train.shape[-1], eval_split, len(evaluation), len(bank))
    if len(train) > 20_000 and cfg.svm.approx == "none":
        log.warning("exact kernel SVC on %d images: fit time grows with the square of that (about "
                    "10 s for 10,000 here); set dataset.train_size or svm=nystroem", len(train))

    extractors: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "raw": lambda x: x.flatten(1),
        "gabor": lambda x: gabor_features(x, bank, cfg.features.pool_grid, cfg.features.nonlinearity),
    }
    summary: dict[str, float] = {"train_size": float(len(train))}
    confusions, rows = {}, []
    for name, extract in extractors.items():
        metrics, confusion, timings = fit_and_score(
            cfg.svm, extract, x_train, train.y.numpy(), x_eval, evaluation.y.numpy(),
            data.num_classes, seed=cfg.seed)
        summary.update({f"{name}/{k}": v for k, v in metrics.items()})
        run.timings.update({f"{name}/{k}": round(v, 3) for k, v in timings.items()})
        confusions[f"SVM on {FEATURE_TITLES[name]} ({data.name} {eval_split})"] = confusion
        rows.append((name, metrics, timings))
        log.info("%s: accuracy %.4f, fit %.1fs, predict %.1fs", name, metrics["accuracy"],
                 timings["fit_seconds"], timings["predict_seconds"])
    summary["gabor_gain/accuracy"] = summary["gabor/accuracy"] - summary["raw/accuracy"]
    run.metrics.log(0, eval_split, **summary)

    plot_gabor_bank(bank.kernels, bank.params, run.plots_dir / "gabor_filters.png")
    plot_confusion(confusions, data.classes, run.plots_dir / "confusion_raw_vs_gabor.png")
    write_results(run, cfg, data.name, eval_split, len(train), rows)
    return summary


def to_unit_images(x: torch.Tensor, factor: int) -> torch.Tensor:
    """uint8 (N, 1, H, W) -> float32 (N, 1, H/factor, W/factor) on 0..1, by area averaging."""
    if factor < 1:
        raise DlfpError(f"svm.downsample={factor} must be a positive integer (2: 28x28 -> 14x14)")
    if x.shape[-1] % factor or x.shape[-2] % factor:
        raise DlfpError(f"svm.downsample={factor} does not divide the {x.shape[-2]}x{x.shape[-1]} images")
    return area_downsample(x, factor) / 255.0


def build_bank(features_cfg: DictConfig, image_size: int) -> GaborBank:
    return gabor_bank(
        orientations=features_cfg.orientations,
        wavelengths=list(features_cfg.wavelengths),
        phases=list(features_cfg.phases),
        kernel_size=features_cfg.kernel_size,
        sigma=features_cfg.sigma,
        sigma_per_wavelength=features_cfg.sigma_per_wavelength,
        aspect=features_cfg.aspect,
        image_size=image_size,
    )


def fit_and_score(
    svm_cfg: DictConfig,
    extract: Callable[[torch.Tensor], torch.Tensor],
    x_train: torch.Tensor,
    y_train: np.ndarray,
    x_eval: torch.Tensor,
    y_eval: np.ndarray,
    num_classes: int,
    seed: int,
) -> tuple[dict[str, float], np.ndarray, dict[str, float]]:
    """Features, fit, predict: (metrics, confusion matrix, timings in seconds)."""
    began = time.perf_counter()
    f_train = extract(x_train).numpy()
    train_features = time.perf_counter() - began
    began = time.perf_counter()
    f_eval = extract(x_eval).numpy()
    eval_features = time.perf_counter() - began

    classifier = build_classifier(svm_cfg, f_train, seed)
    began = time.perf_counter()
    classifier.fit(f_train, y_train)
    fit_seconds = time.perf_counter() - began
    began = time.perf_counter()
    predicted = classifier.predict(f_eval)
    predict_seconds = time.perf_counter() - began

    confusion = np.bincount(y_eval * num_classes + predicted, minlength=num_classes**2)
    confusion = confusion.reshape(num_classes, num_classes)
    accuracy = float(np.trace(confusion)) / len(y_eval)
    metrics = {"accuracy": accuracy, "error": 1.0 - accuracy, "dims": float(f_train.shape[1])}
    svc = classifier.named_steps["svm"]
    if isinstance(svc, SVC):
        metrics["support_vectors"] = float(svc.support_.size)
    timings = {
        "features_seconds": train_features + eval_features,
        "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
        "train_seconds": train_features + fit_seconds,  # training images -> fitted classifier
    }
    return metrics, confusion, timings


def build_classifier(svm_cfg: DictConfig, features: np.ndarray, seed: int) -> Pipeline:
    """[StandardScaler] -> SVC, or [StandardScaler] -> kernel map -> LinearSVC (svm.approx). The
    schema's ranges and rules have checked the settings (gamma, C, rbf_sampler's kernel)."""
    kernel, approx, gamma = svm_cfg.kernel, svm_cfg.approx, svm_cfg.gamma
    steps: list = [("scale", StandardScaler())] if svm_cfg.standardize else []
    if approx == "none":
        steps.append(("svm", SVC(kernel=kernel, C=svm_cfg.C, gamma=gamma, degree=svm_cfg.degree,
                                 cache_size=svm_cfg.cache_mb)))
        return Pipeline(steps)
    gamma = resolve_gamma(gamma, features, svm_cfg.standardize)
    if approx == "nystroem":
        kernel_map = Nystroem(kernel=kernel, gamma=gamma, degree=svm_cfg.degree,
                              n_components=min(svm_cfg.n_components, len(features)), random_state=seed)
    else:
        kernel_map = RBFSampler(gamma=gamma, n_components=svm_cfg.n_components, random_state=seed)
    steps += [("kernel_map", kernel_map), ("svm", LinearSVC(C=svm_cfg.C, random_state=seed))]
    return Pipeline(steps)


def resolve_gamma(gamma: str | float, features: np.ndarray, standardize: bool) -> float:
    """SVC's 'scale'/'auto' rules as a number, for the kernel maps that need one."""
    if not isinstance(gamma, str):
        return gamma
    if gamma == "auto":
        return 1.0 / features.shape[1]
    scaled = StandardScaler().fit_transform(features) if standardize else features
    variance = float(scaled.var())
    return 1.0 / (features.shape[1] * variance) if variance > 0 else 1.0


def write_results(run: Run, cfg: DictConfig, dataset: str, eval_split: str, train_size: int,
                  rows: list[tuple[str, dict[str, float], dict[str, float]]]) -> None:
    """results.md: one line per feature set (accuracy is deterministic, the seconds are not)."""
    svm = cfg.svm
    approx = svm.approx
    model = f"{svm.kernel} SVC" if approx == "none" else f"{approx}({svm.n_components}) + LinearSVC"
    lines = [
        f"# SVM on {dataset}: raw pixels vs Gabor features (seed {cfg.seed})",
        "",
        f"{train_size} training images, scored on the {eval_split} split; images area-averaged "
        f"{svm.downsample}x{svm.downsample} (28x28 -> {28 // svm.downsample}x{28 // svm.downsample}); "
        f"{'StandardScaler -> ' if svm.standardize else ''}{model}, C={svm.C}, gamma={svm.gamma}.",
        "",
        f"| features | dims | {eval_split} accuracy | train s (features + fit) | predict s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, metrics, timings in rows:
        lines.append(f"| {FEATURE_TITLES[name]} | {int(metrics['dims'])} | {metrics['accuracy']:.2%} | "
                     f"{timings['train_seconds']:.1f} | {timings['predict_seconds']:.1f} |")
    (run.dir / "results.md").write_text("\n".join(lines) + "\n")

