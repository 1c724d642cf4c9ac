"""Sample quality of generated images, scored by a trained classifier (the DDPM study's measure).

For a set of images: the Fréchet distance between the classifier's penultimate-layer features of
the images and of real reference images (Gaussian fits; its sampling error from bootstrap
resamples of the generated set), the histogram of predicted classes with its entropy (ln 10 when
every class is equally present: mode coverage), the share of classes present, and the mean
top-class probability (confidence: recognisable digits score near 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from dlfp.eval.attacks import PixelModel
from dlfp.eval.frechet import frechet_distance, frechet_distance_std


@dataclass
class Scored:
    features: np.ndarray  # (N, D) penultimate-layer activations
    probabilities: np.ndarray  # (N, classes)


@torch.no_grad()
def score_images(classifier: PixelModel, pixels: torch.Tensor, batch_size: int = 500) -> Scored:
    """Features and class probabilities of images with pixels in [0, 1] (N, C, H, W). The
    classifier's network must have ``features(x)`` and a ``head`` that maps them to logits."""
    features, probabilities = [], []
    net = classifier.net
    for chunk in pixels.split(batch_size):
        batch = {"x": chunk.float()}
        for transform in classifier.transforms:
            batch = transform(batch, None)
        f = net.features(batch["x"])
        features.append(f.double().cpu())
        probabilities.append(net.head(f).softmax(-1).double().cpu())
    return Scored(torch.cat(features).numpy(), torch.cat(probabilities).numpy())


def quality(generated: Scored, reference: Scored, bootstrap: int = 10, seed: int = 0) -> dict[str, float]:
    """The measures of ``generated`` against ``reference`` (see the module docstring)."""
    classes = generated.probabilities.shape[1]
    counts = np.bincount(generated.probabilities.argmax(1), minlength=classes)
    shares = counts / counts.sum()
    nonzero = shares[shares > 0]
    return {
        "frechet": frechet_distance(generated.features, reference.features),
        "frechet_std": frechet_distance_std(reference.features, generated.features, resamples=bootstrap,
                                            seed=seed),
        "class_entropy": float(-(nonzero * np.log(nonzero)).sum()),
        "max_entropy": math.log(classes),
        "classes_present": float((counts > 0).sum()),
        "confidence": float(generated.probabilities.max(1).mean()),
        "images": float(len(generated.features)),
    }


def class_counts(scored: Scored) -> list[int]:
    return np.bincount(scored.probabilities.argmax(1), minlength=scored.probabilities.shape[1]).tolist()
