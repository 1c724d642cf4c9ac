"""features=, svm=, compare=: the SVMs on raw pixels vs Gabor features (experiment=mnist_svm) and the
study table (experiment=mnist_compare)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from dlfp.config.checks import Rule, limit


class SVMKernel(StrEnum):
    rbf = "rbf"
    linear = "linear"
    poly = "poly"


class KernelApprox(StrEnum):
    none = "none"  # exact kernel SVC: cost grows with the square of the training size
    nystroem = "nystroem"  # Nystroem kernel map + LinearSVC
    rbf_sampler = "rbf_sampler"  # random Fourier features (rbf only) + LinearSVC


class GaborNonlinearity(StrEnum):
    energy = "energy"  # sqrt(even^2 + odd^2) of each quadrature phase pair: phase invariant
    abs = "abs"  # |response| of every filter
    relu = "relu"  # max(r, 0) and max(-r, 0) as two channels


@dataclass
class GaborConfig:
    orientations: int = limit(8, ge=1)  # evenly spaced over 180 degrees
    wavelengths: list[float] = limit(factory=lambda: [3.0, 6.0], gt=0)  # pixels of the 14x14 image
    phases: list[float] = field(default_factory=lambda: [0.0, 90.0])  # degrees; 0/90 = even/odd pair
    sigma: float | None = limit(None, gt=0)  # envelope std (px); null: sigma_per_wavelength * wavelength
    sigma_per_wavelength: float = limit(0.5, gt=0)
    aspect: float = limit(1.0, gt=0)  # envelope std along the stripes = sigma / aspect
    kernel_size: int = limit(9, ge=1)  # odd, at most the image size
    nonlinearity: GaborNonlinearity = GaborNonlinearity.energy
    pool_grid: int = limit(4, ge=1)  # rectified responses averaged over pool_grid x pool_grid cells

    RULES: ClassVar = (
        Rule(("kernel_size",), lambda size: size % 2 == 1, "must be odd (the filter has a centre pixel)"),
        Rule(("wavelengths", "phases"), lambda w, p: len(w) > 0 and len(p) > 0, "the bank would be empty"),
    )


@dataclass
class SVMConfig:
    kernel: SVMKernel = SVMKernel.rbf
    C: float = limit(5.0, gt=0)
    gamma: Any = "scale"  # "scale", "auto" or a positive number (rbf/poly)
    degree: int = limit(3, ge=1)  # poly kernel only
    standardize: bool = True  # StandardScaler (per-feature zero mean, unit variance) before the SVM
    approx: KernelApprox = KernelApprox.none
    n_components: int = limit(2000, ge=1)  # size of the approximate kernel map (approx != none)
    downsample: int = limit(2, ge=1)  # area-average factor: 28x28 -> 14x14
    cache_mb: int = limit(1000, ge=1)  # libsvm kernel cache

    RULES: ClassVar = (Rule(("gamma",), lambda g: g in ("scale", "auto") or (
        isinstance(g, (int, float)) and not isinstance(g, bool) and g > 0),
        "must be 'scale', 'auto' or a positive number"),
        Rule(("approx", "kernel"), lambda approx, kernel: approx != "rbf_sampler" or kernel == "rbf",
             "rbf_sampler approximates the rbf kernel only; use svm.approx=nystroem"))


@dataclass
class CompareConfig:
    experiments: list[str] = field(
        default_factory=lambda: ["mnist_svm", "mnist_nn_numpy", "mnist_nn_torch"])
    overrides: dict[str, list[str]] = field(default_factory=dict)  # extra overrides per experiment
    labels: dict[str, str] = field(default_factory=dict)  # method name shown for an experiment


SCHEMAS = {"features": {"gabor": GaborConfig}, "svm": {"svm": SVMConfig},
           "compare": {"compare": CompareConfig}}
