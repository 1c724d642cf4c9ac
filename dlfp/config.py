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


@dataclass
class MNIST5kConfig:
    _target_: str = "dlfp.data.mnist5k.load_mnist5k"
    name: str = "mnist5k"
    val_size: int = 1000  # stratified: val_size / 10 per class
    split_seed: int = 0


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
