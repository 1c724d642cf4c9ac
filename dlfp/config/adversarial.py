"""adversarial=: the attack analysis of a trained classifier (experiment=cifar_adversarial).

Perturbation sizes are in 1/255 pixel steps: eps 8 is the literature's 8/255.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import II

from dlfp.config.checks import SEED, limit


@dataclass
class AdversarialConfig:
    checkpoint: str | None = None  # a classifier run directory (its checkpoints/last.pt) or a .pt file
    split: str = "test"  # the split attacked
    # eps in 1/255 pixel steps, at most the pixel range (255): a larger ball holds every image
    eps: float = limit(8.0, gt=0, le=255)  # the study's eps: FGSM on the whole split, PGD, I-FGSM
    eps_curve: list[float] = limit(factory=lambda: [1.0, 2.0, 4.0, 8.0, 16.0], gt=0, le=255)  # accuracy(eps)
    ifgsm_steps: int = limit(5, ge=1)  # iterative FGSM (BIM): steps of eps / ifgsm_steps, no random start
    pgd_steps: list[int] = limit(factory=lambda: [10, 20], ge=1)  # PGD, random start, step 2.5 eps / steps
    curve_pgd_steps: int = limit(10, ge=1)  # PGD steps of the accuracy-against-eps curve
    n_images: int = limit(500, ge=1)  # a seeded subset for PGD, I-FGSM and the curves (FGSM uses all)
    batch_size: int = limit(500, ge=1)
    gradient_images: int = limit(8, ge=1)  # correctly and wrongly classified images in the gradient figures
    seed: int = limit(II("seed"), **SEED)  # the subset and PGD's random starts


SCHEMAS = {"adversarial": {"adversarial": AdversarialConfig}}
