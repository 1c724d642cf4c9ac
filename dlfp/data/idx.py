"""Reader for the IDX format of the original MNIST files (gzipped or not)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from dlfp.errors import DlfpError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file into an array of its stated shape; a corrupt file raises DlfpError."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except PermissionError:
        raise DlfpError(f"cannot read {path}: permission denied; make it readable (chmod +r)") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DlfpError(f"cannot read {path}: {e}; it is damaged. Delete it and download it again.") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DlfpError(f"{path} is not an IDX file (bad magic number). Replace it.")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise DlfpError(
            f"{path} is truncated or corrupt: {len(data)} bytes, expected {expected} for shape "
            f"{shape}. Delete it and download it again."
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))
