"""Tokenizers: the special tokens, exact round trips (bpe_bytes, char), the study's BPE decoding into
whole words, vocabulary sizes, the cache and its damage, chunked encoding, and the size checks."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from tokenizers import Tokenizer

from dlfp.data import tokenizer as tk
from dlfp.errors import DlfpError

SHAKESPEARE = SHARED_DATA / "text" / "shakespeare.txt"
ODD_TEXTS = ["", "Café naïve façade, jalapeño", "e\u0301 (combining accent) vs \u00e9",
             "  leading and trailing  ", "tabs\tand\t\ttabs", "windows\r\nlines\r\n",
             "many     spaces\n\n\n\nand newlines\n", "emoji 😀👍🏽 and CJK 東京 中文",
             "\x00\x07 control \u2028 \u00a0 nbsp", "a literal [CLS] and [PAD]", " \n \n\t\n"]


def corpus(chars: int) -> str:
    """The first ``chars`` characters of Shakespeare, else a generated text of pseudo-words."""
    if SHAKESPEARE.is_file():
        return SHAKESPEARE.read_text(encoding="utf-8")[:chars]
    rng = np.random.default_rng(0)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    words = ["".join(rng.choice(letters, rng.integers(1, 9))) for _ in range(20_000)]
    zipf = 1 / np.arange(1, len(words) + 1)
    picked = rng.choice(len(words), chars // 5, p=zipf / zipf.sum())
    seps = rng.choice([" "] * 12 + [", ", ". ", "\n", "'", "-", " (", ") ", "; ", ": ", "! ", "? "],
                      chars // 5)
    return "".join(words[i] + sep for i, sep in zip(picked, seps))[:chars]


@pytest.fixture(scope="module")
def text() -> str:
    return corpus(200_000)


@pytest.fixture(scope="module")
def trained(text: str) -> dict[str, Tokenizer]:
    return {kind: tk.train_tokenizer(kind, text, 2048) for kind in tk.KINDS}


def reloaded(tok: Tokenizer) -> Tokenizer:
    return Tokenizer.from_str(tok.to_str())


@pytest.mark.parametrize("kind", tk.KINDS)
def test_every_kind_has_the_special_tokens_at_ids_0_to_4(trained: dict[str, Tokenizer], kind: str) -> None:
    for tok in (trained[kind], reloaded(trained[kind])):
        assert [tok.id_to_token(i) for i in range(5)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        assert tok.token_to_id("[PAD]") == tk.PAD_ID == 0
        assert tk.decode(tok, [0, 2, 3, 4]) == ""  # special tokens are skipped


@pytest.mark.parametrize("sample", ODD_TEXTS)
def test_bpe_bytes_round_trips_any_text(trained: dict[str, Tokenizer], sample: str) -> None:
    for tok in (trained["bpe_bytes"], reloaded(trained["bpe_bytes"])):
        ids = tk.encode(tok, sample)
        assert ids.dtype == np.int32 and (ids > 4).all()  # a literal "[CLS]" is text, not the token
        assert tk.decode(tok, ids) == sample


def test_char_round_trips_text_of_its_characters_and_marks_others_unknown() -> None:
    training = "".join(ODD_TEXTS)
    tok = tk.train_tokenizer("char", training, vocab_size=12345)  # the size is ignored
    assert tok.get_vocab_size() == len(set(training)) + 5
    for sample in ODD_TEXTS:
        for t in (tok, reloaded(tok)):
            ids = tk.encode(t, sample)
            assert len(ids) == len(sample) and tk.decode(t, ids) == sample
    ids = tk.encode(tok, "aQb")  # Q is unseen
    assert ids[1] == tk.UNK_ID and tk.decode(tok, ids) == "ab"


@pytest.mark.parametrize("kind", tk.KINDS)
def test_training_is_deterministic(text: str, kind: str) -> None:
    assert tk.train_tokenizer(kind, text[:50_000], 1000).to_str() == tk.train_tokenizer(kind, text[:50_000],
                                                                                         1000).to_str()


def test_continuation_forms_are_those_the_trainer_makes(text: str) -> None:
    from tokenizers import trainers

    for sample in (text, "".join(ODD_TEXTS) + "x²y ①② a_b ﬁne İstanbul ΣΑΣ a\u00adb x\u200by"):
        tok = tk._bpe_study()
        trainer = trainers.BpeTrainer(vocab_size=5, special_tokens=tk.SPECIAL_TOKENS,
                                      continuing_subword_prefix="##", show_progress=False)
        tok.train_from_iterator([sample], trainer)
        made = sorted(t for t in tok.get_vocab() if t.startswith("##"))
        assert tk._continuations(tok, sample) == made and made


def test_bpe_study_decodes_whole_lowercased_words(trained: dict[str, Tokenizer]) -> None:
    tok = trained["bpe_study"]
    assert tk.decode(tok, tk.encode(tok, "The Eiffel Tower is in Paris.")) == "the eiffel tower is in paris."
    rare = "Zwischenfallsberichterstattung"
    assert len(tk.encode(tok, rare)) > 3  # split into several subwords, rejoined
    assert tk.decode(tok, tk.encode(tok, f"A {rare}, surely!")) == f"a {rare.lower()}, surely!"
    assert tk.decode(tok, tk.encode(tok, "Café\n\nNAÏVE  élan")) == "cafe naive elan"  # whitespace is lost
    assert tk.decode(tok, tk.encode(tok, "Isn't it well-known (to me): yes; O'er")) == \
        "isn't it well-known (to me): yes; o'er"
    assert tk.decode(reloaded(tok), tk.encode(tok, "Paris.")) == "paris."


def test_bpe_vocabulary_is_the_requested_size(trained: dict[str, Tokenizer]) -> None:
    assert trained["bpe_study"].get_vocab_size() == trained["bpe_bytes"].get_vocab_size() == 2048
    big = corpus(1_000_000)
    sizes = {(kind, v): tk.train_tokenizer(kind, big, v).get_vocab_size()
             for kind in ("bpe_study", "bpe_bytes") for v in (8192, 16384)}
    for (kind, v), size in sizes.items():
        assert 2048 < size <= v, (kind, v, size)
    if SHAKESPEARE.is_file():  # 1 MB of Shakespeare has the merges for all but bpe_study's 16k (16,095)
        assert sizes["bpe_study", 8192] == sizes["bpe_bytes", 8192] == 8192
        assert sizes["bpe_bytes", 16384] == 16384 and sizes["bpe_study", 16384] > 15000


@pytest.mark.parametrize("kind", tk.KINDS)
def test_chunked_encoding_equals_whole_text_encoding(trained: dict[str, Tokenizer], kind: str, text: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    tok = trained[kind]
    tricky = "word \nword\n  word\t\nword\n\nword\r\nx\n \ny's\n'tis\n-- ok --\nend  "
    sample = (text[:20_000] + tricky) * 3 if kind != "char" else text[:20_000] * 3
    whole = tok.encode(sample, add_special_tokens=False).ids
    monkeypatch.setattr(tk, "CHUNK_CHARS", 7)
    assert len(list(tk._chunks(sample))) > 100
    ids = tk.encode(tok, sample)
    assert ids.tolist() == whole
    if kind != "bpe_study":
        assert tk.decode(tok, ids) == sample


SOURCE = {"corpus_sha256": "abc", "val_fraction": 0.1}


def test_cache_is_reused_and_keyed_by_corpus_split_and_settings(text: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    trainings = []
    real = tk.train_tokenizer
    monkeypatch.setattr(tk, "train_tokenizer", lambda *a: trainings.append(a[0]) or real(*a))
    first = tk.load_or_train("bpe_bytes", text, 300, cache_dir=tmp_path / "cache", source=SOURCE)
    [cached] = (tmp_path / "cache").iterdir()
    assert cached.name.startswith("tokenizer-bpe_bytes-300-") and cached.suffix == ".json"

    def no_training(*args):
        raise AssertionError("retrained although cached")

    monkeypatch.setattr(tk, "train_tokenizer", no_training)
    again = tk.load_or_train("bpe_bytes", text, 300, cache_dir=tmp_path / "cache", source=dict(SOURCE))
    assert again.to_str() == first.to_str() and trainings == ["bpe_bytes"]
    monkeypatch.setattr(tk, "train_tokenizer", lambda *a: trainings.append(a[0]) or real(*a))
    others = [("bpe_bytes", 300, text, {**SOURCE, "corpus_sha256": "abd"}),
              ("bpe_bytes", 300, text, {**SOURCE, "val_fraction": 0.2}),
              ("bpe_bytes", 300, text[:-1], SOURCE),  # another training text under the same names
              ("bpe_bytes", 301, text, SOURCE), ("bpe_study", 300, text, SOURCE), ("char", 300, text, SOURCE)]
    for kind, vocab, sample, source in others:
        tk.load_or_train(kind, sample, vocab, cache_dir=tmp_path / "cache", source=source)
    assert len(trainings) == 7 and len(list((tmp_path / "cache").iterdir())) == 7  # no temporary files left


@pytest.mark.parametrize("planted", ["plain file", "other corpus", "smaller val_fraction"])
def test_a_cache_trained_on_other_text_is_retrained_not_trusted(text: str, tmp_path: Path, planted: str,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """A valid tokenizer file put under this corpus's cache name is used only if it records this
    run's training text, corpus and split: one from another corpus gave 6.88 bits per character
    instead of 5.40, one trained with a smaller val_fraction has seen this run's validation text."""
    ours, theirs = text[:20_000], text[20_000:40_000]
    tok = tk.load_or_train("bpe_bytes", ours, 300, cache_dir=tmp_path / "ours", source=SOURCE)
    [cache] = (tmp_path / "ours").iterdir()
    if planted == "plain file":
        cache.write_text(tk.train_tokenizer("bpe_bytes", theirs, 300).to_str())
    else:
        source, sample = (({**SOURCE, "corpus_sha256": "other"}, theirs) if planted == "other corpus"
                          else ({**SOURCE, "val_fraction": 0.05}, ours + text[20_000:21_000]))
        tk.load_or_train("bpe_bytes", sample, 300, cache_dir=tmp_path / "theirs", source=source)
        [other] = (tmp_path / "theirs").iterdir()
        cache.write_text(other.read_text())
    with caplog.at_level(logging.WARNING, logger=tk.__name__):
        again = tk.load_or_train("bpe_bytes", ours, 300, cache_dir=tmp_path / "ours", source=SOURCE)
    assert "retraining the tokenizer" in caplog.text
    assert ("does not record" if planted == "plain file" else "trained on other text") in caplog.text
    assert again.to_str() == tok.to_str()
    assert json.loads(cache.read_text())["trained_on"]["train_sha256"] == \
        hashlib.sha256(ours.encode()).hexdigest()  # rewritten with this run's record


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "other kind"])
def test_a_damaged_cache_is_retrained_and_rewritten(text: str, tmp_path: Path, damage: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    sample = text[:20_000]
    tok = tk.load_or_train("bpe_study", sample, 512, cache_dir=tmp_path, source=SOURCE)
    [cache] = tmp_path.iterdir()
    good = cache.read_text()
    other_kind = good.replace(json.dumps(json.loads(good)["tokenizer"]),
                              tk.train_tokenizer("bpe_bytes", sample, 512).to_str())
    cache.write_text({"garbage": "not json {", "truncated": good[: len(good) // 2], "empty": "",
                      "other kind": other_kind}[damage])
    with caplog.at_level(logging.WARNING, logger=tk.__name__):
        again = tk.load_or_train("bpe_study", sample, 512, cache_dir=tmp_path, source=SOURCE)
    assert "retraining the tokenizer" in caplog.text
    assert again.to_str() == tok.to_str() and cache.read_text() == good


def test_encode_and_decode_edges(trained: dict[str, Tokenizer]) -> None:
    tok = trained["bpe_bytes"]
    assert tk.encode(tok, "").dtype == np.int32 and tk.encode(tok, "").size == 0
    assert tk.decode(tok, np.array([], dtype=np.int32)) == ""
    assert tk.decode(tok, tk.encode(tok, "hello").tolist()) == "hello"
    with pytest.raises(DlfpError, match="outside this tokenizer's 2048 tokens"):
        tk.decode(tok, [5, 2048])
    with pytest.raises(DlfpError, match="outside"):
        tk.decode(tok, [-1])


def test_save_tokenizer_writes_a_loadable_file(trained: dict[str, Tokenizer], tmp_path: Path) -> None:
    path = tmp_path / "run" / "tokenizer.json"
    tk.save_tokenizer(trained["char"], path)
    assert [p.name for p in path.parent.iterdir()] == ["tokenizer.json"]
    assert Tokenizer.from_file(str(path)).to_str() == trained["char"].to_str()


@pytest.mark.parametrize("kind, size, message", [
    ("bpe", 2048, "not a tokenizer"), ("bpe_bytes", 260, "out of range"), ("bpe_bytes", 0, "out of range"),
    ("bpe_study", -1, "out of range"), ("bpe_study", 10, "out of range"),
    ("bpe_bytes", 1 << 30, "out of range"),
    ("bpe_study", "2048", "not an integer"), ("bpe_bytes", 2048.0, "not an integer"),
    ("bpe_bytes", True, "not an integer")])
def test_check_vocab_size_rejects_absurd_sizes(kind: str, size, message: str) -> None:
    with pytest.raises(DlfpError, match=message):
        tk.check_vocab_size(kind, size)
    with pytest.raises(DlfpError, match=message):
        tk.train_tokenizer(kind, "some text", size)


def test_check_vocab_size_accepts_sensible_sizes() -> None:
    for kind, size in [("bpe_bytes", 261), ("bpe_study", 64), ("bpe_study", 16384), ("char", 0),
                       ("char", -5)]:
        tk.check_vocab_size(kind, size)
    with pytest.raises(DlfpError, match="empty text"):
        tk.train_tokenizer("bpe_bytes", "", 2048)


def test_an_alphabet_larger_than_the_vocabulary_is_explained() -> None:
    cjk = " ".join(chr(0x4E00 + i) for i in range(200))
    with pytest.raises(DlfpError, match="at least"):
        tk.train_tokenizer("bpe_study", cjk, 128)
