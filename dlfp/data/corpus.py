"""A text corpus for language models: UTF-8 files (paths or globs) and Project Gutenberg books by id,
each split by characters into training text and its last ``val_fraction`` for validation.

Gutenberg books are downloaded once, stripped of the Gutenberg header and footer, and cached as
``<data_dir>/gutenberg/pg<id>.txt`` with a ``.sha256`` sidecar: a cached book that no longer matches
its sidecar is downloaded again, never trusted. Every experiment also runs offline on local text:
``corpus=shakespeare`` (``text/shakespeare.txt`` under the data folder, ``DLFP_DATA``), or any files in
place of the books (``corpus.gutenberg=[] corpus.files=[path/to/text.txt]``).
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dlfp.data.download import download_folder
from dlfp.errors import DlfpError

log = logging.getLogger(__name__)

GUTENBERG_URL = "https://www.gutenberg.org/cache/epub/{id}/pg{id}.txt"
STUDY_BOOKS = [2852, 100, 2600]  # The Hound of the Baskervilles, Shakespeare's Complete Works, War and Peace
TIMEOUT_S = 60
# the offline advice, as overrides that work when typed after the failing command (a corpus.files
# override alone would keep the books and download them again)
OFFLINE = ("a local text: corpus=shakespeare (text/shakespeare.txt under DLFP_DATA), or your own files "
           "in place of the books: corpus.gutenberg=[] corpus.files=[path/to/text.txt]")
_START = re.compile(r"^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK\b.*$", re.I | re.M)
_END = re.compile(r"^\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK\b.*$", re.I | re.M)


@dataclass
class Corpus:
    train: str  # the first (1 - val_fraction) of each file's characters, files joined by "\n\n"
    val: str  # the last val_fraction of each file's characters, joined the same way
    sources: list[str]  # the files read, in order (resolved paths)
    sha256: str  # one digest over the sources' names and bytes, for cache keys


def load_corpus(files: list[str], *, data_dir: str | Path, val_fraction: float = 0.1,
                gutenberg: list[int] | None = None, download: bool = True) -> Corpus:
    """The Gutenberg books, then ``files``, each split at ``int(len * (1 - val_fraction))``
    characters, so that validation text is unseen text from every source, not one whole file."""
    if not 0 < val_fraction < 1:
        raise DlfpError(f"corpus.val_fraction={val_fraction} must be between 0 and 1 (exclusive)")
    data_dir = Path(data_dir).expanduser().resolve()
    paths = [gutenberg_book(i, data_dir, download) for i in gutenberg or []]
    paths += resolve_files(files, data_dir)
    paths = list(dict.fromkeys(paths))
    if not paths:
        raise DlfpError("the corpus is empty; name text files with corpus.files=[...] or Project "
                        "Gutenberg ids with corpus.gutenberg=[...]")
    digest, train, val = hashlib.sha256(), [], []
    for path in paths:
        raw = path.read_bytes()
        text = decode_text(raw, path)
        cut = int(len(text) * (1 - val_fraction))
        train.append(text[:cut])
        val.append(text[cut:])
        digest.update(f"{path.name}\0{len(raw)}\0".encode())
        digest.update(raw)
    return Corpus(train="\n\n".join(train), val="\n\n".join(val), sources=[str(p) for p in paths],
                  sha256=digest.hexdigest())


def check_long_enough(corpus: Corpus, tokens_needed: int, tokens: tuple[int, int] | None = None) -> None:
    """Stops before training when a split cannot fill even one context window. ``tokens`` holds the
    training and validation splits' token counts (only the caller knows the tokenizer); without
    them each split's UTF-8 bytes bound its tokens from above (no tokenizer here makes more tokens
    than a text has bytes), so a corpus certainly too small stops before a tokenizer is trained."""
    counts = tokens if tokens is not None else (len(corpus.train.encode()), len(corpus.val.encode()))
    for split, count in zip(("training", "validation"), counts):
        if count < tokens_needed:
            names = ", ".join(Path(s).name for s in corpus.sources)
            has = f"{count} tokens" if tokens else f"{count} bytes of text, so at most {count} tokens,"
            raise DlfpError(
                f"the corpus is too small: its {split} split ({names}) has {has} and needs at least "
                f"{tokens_needed} tokens per split for one context window of inputs and next-token "
                "targets; add text with corpus.files=[...] or lower model.context")


# ---- local files -------------------------------------------------------------------------------


def resolve_files(files: list[str], data_dir: Path) -> list[Path]:
    """Each path or glob, relative ones tried against the current folder and then ``data_dir``;
    glob matches sorted so that the corpus (and its digest) does not depend on the file system."""
    out: list[Path] = []
    for pattern in files:
        pattern = os.path.expanduser(str(pattern))
        bases = [Path.cwd()] if os.path.isabs(pattern) else [Path.cwd(), data_dir]
        if any(c in pattern for c in "*?["):
            matches = next((m for m in (_glob(b, pattern) for b in bases) if m), [])
            if not matches:
                raise DlfpError(f"corpus.files pattern {pattern} matches no files (looked in "
                                f"{' and '.join(map(str, bases))}); fix the pattern or the paths.data_dir")
            out += matches
        else:
            out.append(_existing(pattern, bases))
    return list(dict.fromkeys(out))


def _glob(base: Path, pattern: str) -> list[Path]:
    return sorted(Path(p).resolve() for p in glob.glob(str(base / pattern), recursive=True)
                  if os.path.isfile(p))


def _existing(name: str, bases: list[Path]) -> Path:
    path = next((b / name for b in bases if (b / name).exists()), None)
    if path is None:
        raise DlfpError(f"corpus file {name} not found (looked in {' and '.join(map(str, bases))}); "
                        "fix the path in corpus.files=[...] or put the file there")
    if path.is_dir():
        raise DlfpError(f"corpus file {path} is a folder; list its files with a glob, "
                        f"e.g. corpus.files=[{path}/*.txt]")
    return path.resolve()


def decode_text(raw: bytes, path: Path) -> str:
    """UTF-8 text without a byte-order mark and with "\\n" line ends, or a DlfpError saying why not."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DlfpError(f"{path} is UTF-16 text, not UTF-8; convert it "
                        f"(iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}.utf8.txt) and list that")
    if b"\0" in raw:
        raise DlfpError(f"{path} contains NUL bytes, so it is a binary file, not text; remove it from "
                        "corpus.files or give UTF-8 text instead")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DlfpError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason}); convert it (e.g. iconv "
                        f"-f LATIN1 -t UTF-8 {path.name} > {path.stem}.utf8.txt) and list that") from None
    text = text.replace("\r\n", "\n")
    if not text.strip():
        raise DlfpError(f"{path} is empty; remove it from corpus.files or fill it with text")
    return text


# ---- Project Gutenberg -------------------------------------------------------------------------


def fetch(url: str) -> bytes:
    """The one network call of this module (tests replace it)."""
    request = urllib.request.Request(url, headers={"User-Agent": "dlfp"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        return response.read()


def gutenberg_book(book: int, data_dir: Path, download: bool) -> Path:
    """``<data_dir>/gutenberg/pg<id>.txt``, stripped, checked against its sidecar, downloaded when
    missing or changed; a file saved there by hand (no sidecar yet) is taken as the raw download."""
    path = data_dir / "gutenberg" / f"pg{book}.txt"
    sidecar = path.with_name(path.name + ".sha256")
    url = GUTENBERG_URL.format(id=book)
    if path.is_file() and not sidecar.is_file():
        _store(path, strip_gutenberg(path.read_bytes(), path, url))
        return path
    if path.is_file():
        if hashlib.sha256(path.read_bytes()).hexdigest() == sidecar.read_text(errors="replace").strip():
            return path
        if not download:
            raise DlfpError(f"{path} no longer matches its checksum in {sidecar.name}; delete both and run "
                            f"with corpus.download=true, or save {url} there unchanged and delete "
                            f"{sidecar.name}, or train on {OFFLINE}")
        log.warning("%s no longer matches %s; downloading it again", path, sidecar.name)
    elif not download:
        raise DlfpError(f"Project Gutenberg book {book} is not in {path} and corpus.download=false; "
                        f"save {url} there unchanged, or train offline on {OFFLINE}")
    log.info("downloading %s", url)
    try:
        raw = fetch(url)
    except Exception as e:  # noqa: BLE001 - any failure means: explain and stop
        raise DlfpError(f"downloading Project Gutenberg book {book} from {url} failed ({type(e).__name__}: "
                        f"{e}); save that file as {path} by hand, or train offline on {OFFLINE}") from None
    _store(path, strip_gutenberg(raw, path, url))
    return path


def strip_gutenberg(raw: bytes, path: Path, url: str) -> str:
    """The book between the "*** START OF THE PROJECT GUTENBERG EBOOK ... ***" and "*** END ..."
    lines, so that the licence text does not become training data."""
    text = decode_text(raw, path)
    start = _START.search(text)
    end = _END.search(text, start.end()) if start else None
    if start is None or end is None:
        which = "START" if start is None else "END"
        raise DlfpError(f"{path} has no '*** {which} OF THE PROJECT GUTENBERG EBOOK' line, so it is not a "
                        f"Project Gutenberg text file; save {url} there unchanged, or list plain text "
                        "in corpus.files=[...]")
    book = text[start.end():end.start()].strip()
    if not book:
        raise DlfpError(f"{path} has nothing between its Project Gutenberg START and END lines; "
                        f"save {url} there unchanged")
    return book + "\n"


def _store(path: Path, text: str) -> None:
    """The stripped text and its sidecar, both complete or neither changed: written in a temporary
    folder, then the sidecar moved into place first, so an interruption leaves a mismatch (and a
    new download next time), never a file trusted without its checksum."""
    data = text.encode("utf-8")
    with download_folder(path.parent, path.stem) as tmp:
        (tmp / "text").write_bytes(data)
        (tmp / "sha256").write_text(hashlib.sha256(data).hexdigest() + "\n")
        os.replace(tmp / "sha256", path.with_name(path.name + ".sha256"))
        os.replace(tmp / "text", path)
