"""A temporary folder for a download, inside the data root and removed whatever happens, so that
a failed or interrupted download leaves nothing half-written where the data belong."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def download_folder(root: Path, name: str) -> Iterator[Path]:
    """Yields ``<root>/.<name>-download-XXXX``; the caller moves only complete files out of it."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-download-", dir=root))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
