"""Where a command-line tool writes its figures, checked before any work: a sampling script must not
spend minutes drawing images and then fail on its output path (``scripts/ddpm_sample.py``,
``scripts/vae_sample.py``)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backend_bases import FigureCanvasBase

from dlfp.errors import DlfpError
from dlfp.rundir import unusable


def check_figure_path(path: Path, flag: str) -> None:
    """``path``, given to ``flag``, names a file matplotlib can write, in a folder that can be made."""
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix and path.suffix[1:].lower() not in formats:
        raise DlfpError(f"{flag} {path}: matplotlib writes no {path.suffix} files; use .png or "
                        f"one of {', '.join(sorted(formats))}")
    if path.is_dir():
        raise DlfpError(f"{flag} {path} is a folder; name a file in it, e.g. {path / 'grid.png'}")
    check_directory(path.parent, flag, path)


def check_directory(folder: Path, flag: str, given: Path | None = None) -> None:
    """``folder`` (that of the path ``given`` to ``flag``, or the flag's own) can be made and written."""
    why = unusable(str(folder))
    if why:
        where = f"{flag} {given}: its folder {folder}" if given is not None else f"{flag} {folder}"
        raise DlfpError(f"{where} {why}; name a place where a folder can be created and written")
