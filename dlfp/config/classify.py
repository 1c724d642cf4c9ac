"""classify=: the image classifier's training and evaluation options (task classify): label
smoothing, adversarial training, the splits evaluated during training and test-time augmentation.
Every experiment of the classify task composes it (``- /schema/classify@classify: classify``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from dlfp.config.checks import limit


class AdversarialKind(StrEnum):
    none = "none"
    fgsm_rs = "fgsm_rs"  # FGSM from a random start, step 1.25 eps (Wong et al. 2020)
    pgd = "pgd"  # adversarial_steps steps from a random start, step 2.5 eps / steps (Madry et al. 2018)


class TestTimeAugment(StrEnum):
    none = "none"
    flip = "flip"  # the image and its mirror
    flip_translate = "flip_translate"  # those, and both shifted one pixel up-left and down-right


@dataclass
class ClassifyConfig:
    eval_splits: list[str] = field(default_factory=lambda: ["val"])  # evaluated during training
    label_smoothing: float = limit(0.0, ge=0, lt=1)  # of the training cross-entropy
    adversarial: AdversarialKind = AdversarialKind.none  # train on attacked batches
    adversarial_eps: float = limit(8.0, gt=0, le=255)  # their eps, in 1/255 pixel steps (255: the range)
    adversarial_steps: int = limit(7, ge=1)  # PGD steps per training batch
    adversarial_eval_images: int = limit(1000, ge=1)  # test images scored under PGD-20 after training
    tta: TestTimeAugment = TestTimeAugment.none  # logits averaged over views at evaluation


SCHEMAS = {"classify": {"classify": ClassifyConfig}}
