"""hardware=: device, precision, compilation and threads."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dlfp.config.checks import limit


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class AmpDtype(StrEnum):
    bfloat16 = "bfloat16"
    float16 = "float16"


@dataclass
class HardwareConfig:
    device: Device = Device.auto
    amp_dtype: AmpDtype | None = None  # autocast dtype, used on CUDA only
    compile: bool = False  # torch.compile the model
    channels_last: bool = False  # NHWC memory format for conv nets (GPU and CPU)
    threads: int | None = limit(None, ge=1)  # intra-op threads of torch and NumPy's BLAS; null: defaults
    deterministic: bool = True  # torch.use_deterministic_algorithms
    sync_batchnorm: bool = False  # under torchrun: BatchNorm over the global batch (CUDA only)


SCHEMAS = {"hardware": {"hardware": HardwareConfig}}
