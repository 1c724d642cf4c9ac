"""The text corpus: per-file splits, paths and globs, each error message, the Project Gutenberg
download (a fake one: these tests never touch the network) and its checksummed cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlfp.data import corpus
from dlfp.data.corpus import Corpus, check_long_enough, load_corpus
from dlfp.errors import DlfpError

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared/data/text/shakespeare.txt"
BOOK = "It was a dark night.\nThe hound howled on the moor.\n"


def fake_gutenberg(book: str = BOOK, marker: str = "THE") -> bytes:
    """A Project Gutenberg file as served: BOM, CRLF line ends, header and licence footer."""
    text = (f"The Project Gutenberg eBook of Something\n\nRelease date: 2001\n\n"
            f"*** START OF {marker} PROJECT GUTENBERG EBOOK SOMETHING ***\n\n\n{book}\n\n"
            f"*** END OF {marker} PROJECT GUTENBERG EBOOK SOMETHING ***\n\nSection 1. General Terms\n")
    return b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replaces the download with the fake file; the list records the URLs asked for."""
    urls: list[str] = []

    def fake(url: str) -> bytes:
        urls.append(url)
        return fake_gutenberg()

    monkeypatch.setattr(corpus, "fetch", fake)
    return urls


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# ---- splits and paths --------------------------------------------------------------------------


def test_validation_is_the_last_fraction_of_each_file(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", "a" * 90 + "A" * 10)
    b = write(tmp_path / "b.txt", "b" * 45 + "B" * 5)
    c = load_corpus([str(a), str(b)], data_dir=tmp_path)
    assert c.train == "a" * 90 + "\n\n" + "b" * 45
    assert c.val == "A" * 10 + "\n\n" + "B" * 5
    assert c.sources == [str(a), str(b)]
    quarter = load_corpus([str(a)], data_dir=tmp_path, val_fraction=0.25)
    assert (len(quarter.train), len(quarter.val)) == (75, 25)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_val_fraction_outside_0_1_is_refused(tmp_path: Path, fraction: float) -> None:
    a = write(tmp_path / "a.txt", "text")
    with pytest.raises(DlfpError, match="val_fraction"):
        load_corpus([str(a)], data_dir=tmp_path, val_fraction=fraction)


def test_globs_are_sorted_and_repeats_dropped(tmp_path: Path) -> None:
    for name in ("c.txt", "a.txt", "b.txt"):
        write(tmp_path / "texts" / name, name[0] * 10)
    write(tmp_path / "texts" / "notes.md", "not matched")
    (tmp_path / "texts" / "folder.txt").mkdir()
    c = load_corpus([str(tmp_path / "texts" / "*.txt"), str(tmp_path / "texts" / "a.txt")], data_dir=tmp_path)
    assert [Path(s).name for s in c.sources] == ["a.txt", "b.txt", "c.txt"]
    assert c.train == "aaaaaaaaa\n\nbbbbbbbbb\n\nccccccccc"


def test_relative_paths_try_the_current_folder_then_data_dir(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    write(data / "text" / "only_in_data.txt", "from data_dir")
    write(data / "both.txt", "from data_dir")
    write(tmp_path / "work" / "both.txt", "from the current folder")
    monkeypatch.chdir(tmp_path / "work")
    c = load_corpus(["both.txt", "text/only_in_data.txt"], data_dir=data, val_fraction=0.5)
    assert c.sources == [str(tmp_path / "work" / "both.txt"), str(data / "text" / "only_in_data.txt")]
    assert load_corpus(["text/*.txt"], data_dir=data).sources == [str(data / "text" / "only_in_data.txt")]


def test_crlf_and_bom_are_normalised(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", b"\xef\xbb\xbfone\r\ntwo\r\nthree\r\nfour\r\n")
    c = load_corpus([str(a)], data_dir=tmp_path, val_fraction=0.5)
    assert c.train + c.val == "one\ntwo\nthree\nfour\n"


def test_sha256_changes_with_the_bytes_and_names(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", "some text")
    first = load_corpus([str(a)], data_dir=tmp_path).sha256
    assert load_corpus([str(a)], data_dir=tmp_path).sha256 == first
    write(a, "some text!")
    assert load_corpus([str(a)], data_dir=tmp_path).sha256 != first
    b = write(tmp_path / "b.txt", "some text!")
    assert load_corpus([str(b)], data_dir=tmp_path).sha256 != load_corpus([str(a)], data_dir=tmp_path).sha256


# ---- errors ------------------------------------------------------------------------------------


def one_line_error(files: list[str], data_dir: Path, match: str, **kwargs) -> str:
    with pytest.raises(DlfpError, match=match) as raised:
        load_corpus(files, data_dir=data_dir, **kwargs)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    message = one_line_error(["nowhere.txt"], tmp_path, "nowhere.txt not found")
    assert str(tmp_path) in message and "corpus.files" in message


def test_glob_without_matches(tmp_path: Path) -> None:
    message = one_line_error([str(tmp_path / "*.txt")], tmp_path, "matches no files")
    assert "*.txt" in message


def test_folder_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "texts").mkdir()
    one_line_error([str(tmp_path / "texts")], tmp_path, "is a folder.*glob")


@pytest.mark.parametrize("content", [b"", b"\r\n  \n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    a = write(tmp_path / "a.txt", content)
    assert str(a) in one_line_error([str(a)], tmp_path, "is empty")


def test_binary_file(tmp_path: Path) -> None:
    a = write(tmp_path / "a.bin", b"PK\x03\x04\x00\x00data")
    assert str(a) in one_line_error([str(a)], tmp_path, "NUL bytes.*binary")


@pytest.mark.parametrize(("content", "match"), [(b"caf\xe9 au lait", "not UTF-8.*byte 3"),
                                                (b"\xff\xfe\x00abc", "UTF-16 text, not UTF-8")])
def test_non_utf8_file(tmp_path: Path, content: bytes, match: str) -> None:
    a = write(tmp_path / "a.txt", content)
    assert str(a) in one_line_error([str(a)], tmp_path, match)


def test_no_sources_at_all(tmp_path: Path) -> None:
    one_line_error([], tmp_path, "corpus is empty")


def test_too_small_for_one_context_window(tmp_path: Path) -> None:
    c = Corpus(train="x" * 100, val="x" * 10, sources=[str(tmp_path / "tiny.txt")], sha256="0")
    check_long_enough(c, tokens_needed=10, tokens=(100, 10))
    with pytest.raises(DlfpError, match=r"its validation split \(tiny.txt\) has 9 tokens") as raised:
        check_long_enough(c, tokens_needed=10, tokens=(100, 9))
    assert "tiny.txt" in str(raised.value) and "model.context" in str(raised.value)
    with pytest.raises(DlfpError, match="training split .* has 3 tokens and needs at least 10 tokens"):
        check_long_enough(c, tokens_needed=10, tokens=(3, 50))


def test_too_small_is_known_from_the_bytes_before_any_tokenizer(tmp_path: Path) -> None:
    """No tokenizer makes more tokens than a text has UTF-8 bytes: fewer bytes than a window needs
    tokens stops the run before a tokenizer is trained; enough bytes leave it to the token count."""
    c = Corpus(train="é" * 6, val="x" * 20, sources=[str(tmp_path / "tiny.txt")], sha256="0")
    check_long_enough(c, tokens_needed=12)  # 6 characters, but 12 bytes: maybe 12 tokens
    with pytest.raises(DlfpError, match="training .* 12 bytes of text, so at most 12 tokens, and needs"):
        check_long_enough(c, tokens_needed=13)


# ---- Project Gutenberg -------------------------------------------------------------------------


def test_gutenberg_is_downloaded_stripped_and_cached(tmp_path: Path, fetched: list[str]) -> None:
    local = write(tmp_path / "local.txt", "local text")
    c = load_corpus([str(local)], data_dir=tmp_path, gutenberg=[2852], val_fraction=0.5)
    cached = tmp_path / "gutenberg" / "pg2852.txt"
    assert fetched == ["https://www.gutenberg.org/cache/epub/2852/pg2852.txt"]
    assert cached.read_text() == BOOK
    assert (tmp_path / "gutenberg" / "pg2852.txt.sha256").is_file()
    assert c.sources == [str(cached), str(local)]  # Gutenberg books first
    assert "GUTENBERG" not in c.train + c.val and "\r" not in c.train + c.val
    half = len(BOOK) // 2
    assert (c.train, c.val) == (BOOK[:half] + "\n\nlocal", BOOK[half:] + "\n\n text")
    assert sorted(p.name for p in (tmp_path / "gutenberg").iterdir()) == ["pg2852.txt", "pg2852.txt.sha256"]
    load_corpus([], data_dir=tmp_path, gutenberg=[2852])
    assert len(fetched) == 1  # the cache is used


def test_gutenberg_markers_are_lenient_about_this_and_case(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus, "fetch", lambda url: fake_gutenberg(marker="THIS").lower())
    c = load_corpus([], data_dir=tmp_path, gutenberg=[100])
    assert c.train + c.val == BOOK.lower()


@pytest.mark.parametrize("missing", ["START", "END"])
def test_gutenberg_file_without_a_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         missing: str) -> None:
    raw = b"\n".join(line for line in fake_gutenberg().split(b"\r\n") if missing.encode() not in line)
    monkeypatch.setattr(corpus, "fetch", lambda url: raw)
    message = one_line_error([], tmp_path, f"pg100.txt has no '\\*\\*\\* {missing} OF", gutenberg=[100])
    assert "pg100.txt" in message
    assert not (tmp_path / "gutenberg" / "pg100.txt").exists()


def test_an_edited_cache_is_downloaded_again(tmp_path: Path, fetched: list[str]) -> None:
    load_corpus([], data_dir=tmp_path, gutenberg=[2600])
    cached = tmp_path / "gutenberg" / "pg2600.txt"
    write(cached, "edited by hand")
    with pytest.raises(DlfpError, match="no longer matches its checksum in pg2600.txt.sha256"):
        load_corpus([], data_dir=tmp_path, gutenberg=[2600], download=False)
    c = load_corpus([], data_dir=tmp_path, gutenberg=[2600])
    assert len(fetched) == 2 and cached.read_text() == BOOK and c.train + c.val == BOOK


def test_gutenberg_offline_and_missing(tmp_path: Path, fetched: list[str]) -> None:
    message = one_line_error([], tmp_path, "book 2852 is not in", gutenberg=[2852], download=False)
    assert "https://www.gutenberg.org/cache/epub/2852/pg2852.txt" in message
    assert str(tmp_path / "gutenberg" / "pg2852.txt") in message
    assert "corpus=shakespeare" in message
    assert "corpus.gutenberg=[] corpus.files=[path/to/text.txt]" in message
    assert "../shared" not in message  # the user's data folder is DLFP_DATA, not the development layout
    assert fetched == []


def test_gutenberg_download_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(url: str) -> bytes:
        raise OSError("network unreachable")

    monkeypatch.setattr(corpus, "fetch", fail)
    message = one_line_error([], tmp_path, "download.*failed.*network unreachable", gutenberg=[2852])
    assert "corpus.files=" in message
    assert not (tmp_path / "gutenberg").exists() or not any((tmp_path / "gutenberg").iterdir())


def test_gutenberg_file_saved_by_hand_is_stripped(tmp_path: Path, fetched: list[str]) -> None:
    write(tmp_path / "gutenberg" / "pg100.txt", fake_gutenberg())
    c = load_corpus([], data_dir=tmp_path, gutenberg=[100], download=False)
    assert c.train + c.val == BOOK and fetched == []
    assert (tmp_path / "gutenberg" / "pg100.txt.sha256").is_file()


# ---- the real file -----------------------------------------------------------------------------


@pytest.mark.skipif(not SHAKESPEARE.is_file(), reason=f"no local corpus at {SHAKESPEARE}")
def test_the_shared_shakespeare_file(tmp_path: Path) -> None:
    c = load_corpus([str(SHAKESPEARE)], data_dir=tmp_path)
    total = len(c.train) + len(c.val)
    assert total > 4_000_000 and len(c.val) == total - int(total * 0.9)
    assert "\r" not in c.train and "ROMEO" in c.train + c.val
    assert c.sources == [str(SHAKESPEARE)] and len(c.sha256) == 64
