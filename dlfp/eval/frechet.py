"""The Frechet distance between two sets of feature vectors, each summarised by its mean and
covariance (the FID of Heusel et al. 2017 when the features come from Inception; here from any
feature extractor), and a bootstrap estimate of its sampling error.

d^2 = ||mu_1 - mu_2||^2 + Tr(C_1 + C_2 - 2 (C_1 C_2)^{1/2}), the squared 2-Wasserstein distance
between the two Gaussians, in float64. Tr (C_1 C_2)^{1/2} comes from scipy.linalg.sqrtm (the reference
FID code's route, so numbers compare with published ones) or, without scipy or when sqrtm's result
is not real up to round-off, from the eigenvalues of the symmetric PSD matrix sqrt(C_1) C_2 sqrt(C_1),
which has the same trace of square root and never produces imaginary parts.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

try:
    import scipy.linalg as _scipy_linalg
except ImportError:  # scikit-learn depends on scipy, so this is rare
    _scipy_linalg = None


def _as_float64(x: Any) -> np.ndarray:
    """A (N, D) float64 array from a NumPy array or a torch tensor (on any device)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"features must be (N >= 2, D), got shape {x.shape}")
    return x


def feature_statistics(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (N - 1 in the denominator, as the reference FID code) of rows."""
    x = _as_float64(x)
    return x.mean(0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _sym_sqrt(c: np.ndarray) -> np.ndarray:
    """The PSD square root of a symmetric matrix, negative round-off eigenvalues set to 0."""
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(w.clip(min=0))) @ v.T


def trace_sqrt_product(c1: np.ndarray, c2: np.ndarray, method: str = "auto") -> float:
    """Tr (C_1 C_2)^{1/2}. ``method``: ``sqrtm`` (scipy), ``eigh`` (symmetric eigendecomposition)
    or ``auto`` (sqrtm when scipy is installed, eigh otherwise and when sqrtm is not real)."""
    if method not in ("auto", "sqrtm", "eigh"):
        raise ValueError(f"unknown method {method!r}: use 'auto', 'sqrtm' or 'eigh'")
    if method == "sqrtm" and _scipy_linalg is None:
        raise ValueError("method='sqrtm' needs scipy; use method='eigh'")
    if method != "eigh" and _scipy_linalg is not None:
        with warnings.catch_warnings():  # a singular product is handled below (eigh), not an error
            warnings.simplefilter("ignore", _scipy_linalg.LinAlgWarning)
            root = np.asarray(_scipy_linalg.sqrtm(c1 @ c2))
        if np.isfinite(root).all():
            trace = np.trace(root)
            # round-off leaves tiny imaginary parts on a real result; drop them when they are tiny
            if abs(np.imag(trace)) <= 1e-6 * max(1.0, abs(np.real(trace))) or method == "sqrtm":
                return float(np.real(trace))
    s1 = _sym_sqrt(c1)
    return float(np.sqrt(np.linalg.eigvalsh(s1 @ c2 @ s1).clip(min=0)).sum())


def gaussian_frechet_distance(mu1: np.ndarray, c1: np.ndarray, mu2: np.ndarray, c2: np.ndarray,
                              method: str = "auto") -> float:
    """||mu_1 - mu_2||^2 + Tr(C_1 + C_2 - 2 (C_1 C_2)^{1/2}), clipped at 0 against round-off."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    c1, c2 = np.atleast_2d(np.asarray(c1, np.float64)), np.atleast_2d(np.asarray(c2, np.float64))
    if mu1.shape != mu2.shape or c1.shape != c2.shape or c1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched statistics: means {mu1.shape}, {mu2.shape}; covariances {c1.shape}, "
                         f"{c2.shape}")
    d = float(((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * trace_sqrt_product(c1, c2, method))
    return max(d, 0.0)


def frechet_distance(a: Any, b: Any, method: str = "auto") -> float:
    """The Frechet distance between feature sets a (N, D) and b (M, D)."""
    return gaussian_frechet_distance(*feature_statistics(a), *feature_statistics(b), method=method)


def frechet_distance_std(real: Any, generated: Any, resamples: int = 10, seed: int = 0,
                         method: str = "auto") -> float:
    """The sampling error of ``frechet_distance(real, generated)``: the standard deviation (ddof=1)
    of the distance over ``resamples`` bootstrap resamples (with replacement, same size) of the
    generated set, the real statistics held fixed, since a study compares models against one real
    set. It measures the spread from the finite generated sample, not the (positive) bias of
    the estimate, which also shrinks with N."""
    if resamples < 2:
        raise ValueError(f"a standard deviation needs at least 2 resamples, got {resamples}")
    mu, cov = feature_statistics(real)
    generated = _as_float64(generated)
    rng = np.random.default_rng(seed)
    n = len(generated)
    distances = [gaussian_frechet_distance(mu, cov, *feature_statistics(generated[rng.integers(0, n, n)]),
                                           method=method) for _ in range(resamples)]
    return float(np.std(distances, ddof=1))
