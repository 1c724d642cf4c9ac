"""Dataclass schemas for every config node, registered in Hydra's ConfigStore.

Each YAML option extends its schema through its defaults list
(``- /schema/<group>@_here_: <name>``), so a misspelled key or a value of the wrong type fails at
composition time, before any work, with an error that names the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class Device(Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class AmpDtype(Enum):
    bfloat16 = "bfloat16"
    float16 = "float16"


class ScheduleKind(Enum):
    constant = "constant"
    cosine = "cosine"
    linear = "linear"


@dataclass
class PathsConfig:
    data_dir: str = "${oc.env:DLFP_DATA,data}"
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class HardwareConfig:
    device: Device = Device.auto
    amp_dtype: AmpDtype | None = None  # autocast dtype, used on CUDA only
    compile: bool = False  # torch.compile the model
    channels_last: bool = False  # memory format for conv nets on GPU
    threads: int | None = None  # torch intra-op threads; null keeps torch's default
    deterministic: bool = True  # torch.use_deterministic_algorithms


@dataclass
class TrainLoopConfig:
    steps: int | None = None  # update budget; exactly one of steps / epochs is set
    epochs: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 1000
    eval_every: int = 500  # updates between validation passes
    log_every: int = 100  # updates between logged training-loss records
    checkpoint_every: int = 1000  # updates between checkpoints (one is also written at the end)
    grad_clip: float | None = None  # max global gradient norm; null disables clipping


@dataclass
class SGDConfig:
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0  # applied to weights only, never to biases or norm parameters


@dataclass
class AdamConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0


@dataclass
class AdamWConfig(AdamConfig):
    _target_: str = "torch.optim.AdamW"
    weight_decay: float = 0.01


@dataclass
class ScheduleConfig:
    kind: ScheduleKind = ScheduleKind.constant
    warmup_steps: int = 0  # linear warm-up from 0 to the optimizer's lr
    final_lr_fraction: float = 0.0  # lr at the end as a fraction of the peak (cosine, linear)


@dataclass
class PatchMLPConfig:
    _target_: str = "dlfp.models.patch_mlp.PatchMLP"
    in_channels: int = 1
    image_size: int = 28
    patch_size: int = 4
    embed_channels: int = 8
    hidden: list[int] = field(default_factory=lambda: [256])
    num_classes: int = 10


@dataclass
class MNISTConfig:
    _target_: str = "dlfp.data.mnist.load_mnist"
    name: str = "mnist"  # mnist | fashion_mnist: the folder and torchvision class to use
    root: str = "${paths.data_dir}"
    download: bool = True
    val_size: int = 5000  # held out of the 60,000 training images; the 10,000 test set stays apart
    split_seed: int = 0
    train_size: int | None = None  # training images a subsampling task (svm) uses; null = all


@dataclass
class MNIST5kConfig:
    _target_: str = "dlfp.data.mnist5k.load_mnist5k"
    name: str = "mnist5k"
    val_size: int = 1000  # stratified: val_size / 10 per class
    split_seed: int = 0
    train_size: int | None = None  # training images a subsampling task (svm) uses; null = all


@dataclass
class TrainConfig:
    task: str = MISSING
    experiment_name: str = MISSING
    seed: int = 0
    objective: str = "val/error"  # summary metric returned to sweepers
    resume: bool = False  # continue from checkpoints/last.pt of hydra.run.dir
    paths: PathsConfig = field(default_factory=PathsConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    model: Any = None
    dataset: Any = None
    optimizer: Any = None
    schedule: Any = None
    regression: Any = None  # regression task: stopping tolerance, full batch, error grid
    vae: Any = None  # VAE task settings: data selection, ELBO/IWAE sampling, plots
    features: Any = None  # image features for the SVM (features=gabor)
    svm: Any = None  # the SVM classifier (experiment mnist_svm)
    compare: Any = None  # which experiments mnist_compare runs and tabulates


GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "hardware": {"hardware": HardwareConfig},
    "optimizer": {"sgd": SGDConfig, "adam": AdamConfig, "adamw": AdamWConfig},
    "schedule": {"schedule": ScheduleConfig},
    "model": {"patch_mlp": PatchMLPConfig},
    "dataset": {"mnist": MNISTConfig, "mnist5k": MNIST5kConfig},
}


def register_configs() -> None:
    """Put the top-level schema and one schema per group option into Hydra's ConfigStore."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    for group, schemas in GROUP_SCHEMAS.items():
        for name, node in schemas.items():
            cs.store(group=f"schema/{group}", name=name, node=node)


# ---- VAE on binarised 14x14 MNIST (experiment=vae, task vae) ----


@dataclass
class VAEConfig:
    _target_: str = "dlfp.models.vae.VAE"
    input_dim: int = 196  # 14x14 binarised pixels
    hidden: int = 128  # tanh layer in both encoder and decoder
    latent_dim: int = 8


@dataclass
class VAEDataConfig:
    per_class: int = 1000  # training images per digit, class-balanced
    val_images: int = 100  # held-out images for the validation log-likelihood
    strict_balance: bool = False  # true: error if a digit has fewer than per_class images
    threshold: float = 128.0  # pixel (0..255, after downsampling) > threshold -> 1
    downsample: int = 2  # area-average factor: 28x28 -> 14x14
    selection_seed: int = 0  # which images of each digit are chosen


@dataclass
class VAETraversalConfig:
    dims: list[int] | None = None  # two latent dimensions; null picks the two with the largest KL
    span: float = 3.0  # +-span prior standard deviations around the mean
    steps: int = 9  # grid points per dimension


@dataclass
class VAESectionConfig:
    data: VAEDataConfig = field(default_factory=VAEDataConfig)
    mc_samples: int = 2  # Monte Carlo samples of z per image in the training ELBO
    eval_mc_samples: int = 100  # samples per image for the validation/final ELBO
    iwae_k: list[int] = field(default_factory=lambda: [1, 10, 100, 1000])  # final log p(x) bounds
    iwae_chunk: int = 100  # importance samples evaluated at once (memory bound)
    eval_seed: int = 0  # noise of every evaluation, kept apart from the training noise
    num_samples: int = 64  # images in plots/samples.png
    sample_threshold: float | None = None  # null: show Bernoulli means; else binarise them at this
    traversal: VAETraversalConfig = field(default_factory=VAETraversalConfig)


GROUP_SCHEMAS["model"]["vae"] = VAEConfig
GROUP_SCHEMAS["vae"] = {"vae": VAESectionConfig}


# ---- SVM on raw pixels vs Gabor features (experiment mnist_svm) and the study table (mnist_compare) ----


class SVMKernel(Enum):
    rbf = "rbf"
    linear = "linear"
    poly = "poly"


class KernelApprox(Enum):
    none = "none"  # exact kernel SVC: cost grows with the square of the training size
    nystroem = "nystroem"  # Nystroem kernel map + LinearSVC
    rbf_sampler = "rbf_sampler"  # random Fourier features (rbf only) + LinearSVC


class GaborNonlinearity(Enum):
    energy = "energy"  # sqrt(even^2 + odd^2) of each quadrature phase pair: phase invariant
    abs = "abs"  # |response| of every filter
    relu = "relu"  # max(r, 0) and max(-r, 0) as two channels


@dataclass
class GaborConfig:
    orientations: int = 8  # evenly spaced over 180 degrees
    wavelengths: list[float] = field(default_factory=lambda: [3.0, 6.0])  # pixels of the 14x14 image
    phases: list[float] = field(default_factory=lambda: [0.0, 90.0])  # degrees; 0/90 = even/odd pair
    sigma: float | None = None  # Gaussian envelope std in pixels; null = sigma_per_wavelength * wavelength
    sigma_per_wavelength: float = 0.5
    aspect: float = 1.0  # envelope std along the stripes = sigma / aspect
    kernel_size: int = 9  # odd, at most the image size
    nonlinearity: GaborNonlinearity = GaborNonlinearity.energy
    pool_grid: int = 4  # rectified responses averaged over pool_grid x pool_grid cells


@dataclass
class SVMConfig:
    kernel: SVMKernel = SVMKernel.rbf
    C: float = 5.0
    gamma: Any = "scale"  # "scale", "auto" or a positive number (rbf/poly)
    degree: int = 3  # poly kernel only
    standardize: bool = True  # StandardScaler (per-feature zero mean, unit variance) before the SVM
    approx: KernelApprox = KernelApprox.none
    n_components: int = 2000  # size of the approximate kernel map (approx != none)
    downsample: int = 2  # area-average factor: 28x28 -> 14x14
    cache_mb: int = 1000  # libsvm kernel cache


@dataclass
class CompareConfig:
    experiments: list[str] = field(
        default_factory=lambda: ["mnist_svm", "mnist_nn_numpy", "mnist_nn_torch"])
    overrides: dict[str, list[str]] = field(default_factory=dict)  # extra overrides per experiment
    labels: dict[str, str] = field(default_factory=dict)  # method name shown for an experiment


GROUP_SCHEMAS["features"] = {"gabor": GaborConfig}
GROUP_SCHEMAS["svm"] = {"svm": SVMConfig}
GROUP_SCHEMAS["compare"] = {"compare": CompareConfig}


# ---- Nonlinear regression and generalization (experiment=regression, task regression) ----


class RegressionTarget(Enum):
    sin_10pi_x4 = "sin_10pi_x4"  # f*(x) = sin(10 pi x^4)


@dataclass
class MLPConfig:
    _target_: str = "dlfp.models.mlp.MLP"
    in_features: int = 1
    out_features: int = 1
    depth: int = 3  # hidden layers (Linear + ReLU each); the output layer is not counted
    width: int = 256  # units per hidden layer


@dataclass
class SinRegressionConfig:
    _target_: str = "dlfp.data.regression1d.make_regression1d"
    target: RegressionTarget = RegressionTarget.sin_10pi_x4
    n: int = 100  # training points
    noise_std: float = 0.0  # std of Gaussian noise added to the training targets
    x_low: float = 0.0  # training inputs are uniform on [x_low, x_high]: the data's support
    x_high: float = 1.0
    seed: int = 0  # draws the inputs and the noise (the experiment sets it to ${seed})


@dataclass
class RegressionConfig:
    mse_tolerance: float = 1e-4  # stop once the training MSE is at or below this
    full_batch: bool = True  # every update uses all n points; false: minibatches of train.batch_size
    standardize_inputs: bool = True  # the MLP sees (x - mean) / std of U[x_low, x_high]
    fast_mlp_step: bool = True  # MLP + SGD: hand-written update (same arithmetic); false: autograd
    extrapolate_to: float = 1.5  # delta_out's grid runs from dataset.x_low to here
    grid_points: int = 2001  # grid points on [x_low, x_high] for delta_in; same spacing beyond


GROUP_SCHEMAS["model"]["mlp"] = MLPConfig
GROUP_SCHEMAS["dataset"]["sin_regression"] = SinRegressionConfig
GROUP_SCHEMAS["regression"] = {"regression": RegressionConfig}
