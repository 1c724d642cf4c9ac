"""Tokenizers for the language-model task, built with Hugging Face ``tokenizers`` so that each one
saves and loads as a single ``tokenizer.json``:

- ``bpe_study``: the study's BPE. BERT normalisation (clean text, lowercase, accents stripped), split
  on whitespace and punctuation, subwords after the first marked ``##`` and a WordPiece decoder that
  rejoins them, so ``decode(encode("The Eiffel Tower is in Paris."))`` is ``"the eiffel tower is in
  paris."`` (the study's samples came out as ``"the e if fe l to wer"`` because its decoder did not
  rejoin subwords). Lossy by design: case, accents and whitespace are gone (newlines and runs of
  spaces decode as one space), and spacing around punctuation is guessed (see ``decode``).
- ``bpe_bytes``: byte-level BPE, no normalisation; ``decode(encode(x)) == x`` for any text.
- ``char``: one token per character of the training text, ``[UNK]`` for the rest; exact round trip
  for text made of those characters.

Every kind has ``[PAD] [UNK] [CLS] [SEP] [MASK]`` at ids 0..4. Tokenizers are trained on the training
split only and cached as ``<cache_dir>/tokenizer-<kind>-<vocab>-<key>.json``, the key hashing what the
tokenizer was trained on: the training text's digest and length, the kind and size, and the corpus's
digest and split (``corpus.val_fraction``). The cache file carries that record beside the tokenizer
and is reused only when the record matches this run's; a cache file without it (a plain
``tokenizer.json`` put there by hand), with another record (another corpus or split: it may have
seen this run's validation text) or damaged is retrained with a warning, never trusted. Not an
error: the cache is derived data, and retraining it is always right.

Special-token strings in the text (a literal ``"[CLS]"``) are encoded as ordinary text, not as the
special token: ``encode`` sets ``Tokenizer.encode_special_tokens``, which ``tokenizer.json`` does not keep.

Threads: ``encode`` and training run in Rust on rayon's pool, sized by ``RAYON_NUM_THREADS`` (all cores
when unset); ``TOKENIZERS_PARALLELISM=false`` makes them single-threaded. Neither is set here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from dlfp.errors import DlfpError

if TYPE_CHECKING:
    from dlfp.models.transformer import TransformerLM

log = logging.getLogger(__name__)

KINDS = ("bpe_study", "bpe_bytes", "char")
PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"  # SEP starts a text with no prompt
SPECIAL_TOKENS = [PAD, UNK, CLS, SEP, MASK]
PAD_ID, UNK_ID = 0, 1
FORMAT_VERSION = 2  # bump when a kind's definition or the cache file changes, so old caches are not reused
MIN_VOCAB = {"bpe_study": 64, "bpe_bytes": 256 + len(SPECIAL_TOKENS)}
MAX_VOCAB = 1 << 20
CHUNK_CHARS = 1 << 16
# A chunk ends before a newline that follows a non-space character: no pre-tokenizer here puts a
# non-space character and the whitespace after it in one piece, and byte-level BPE's lookahead
# (``\s+(?!\S)``) only differs at a chunk's end when the chunk ends in whitespace, which these never do.
_BOUNDARY = re.compile(r"(?<=\S)\n")


def check_vocab_size(kind: str, vocab_size: int) -> None:
    """Fails early, before reading the corpus, on an unknown kind or an absurd size. ``char`` ignores
    the size (its vocabulary is the training text's characters); the exact floor for ``bpe_study``
    depends on the text's alphabet and is checked after training."""
    if kind not in KINDS:
        raise DlfpError(f"tokenizer={kind!r} is not a tokenizer; choose one of {', '.join(KINDS)}")
    if kind == "char":
        return
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise DlfpError(f"the {kind} vocabulary size {vocab_size!r} is not an integer; use e.g. 2048")
    if not MIN_VOCAB[kind] <= vocab_size <= MAX_VOCAB:
        why = ("the 256 bytes and 5 special tokens" if kind == "bpe_bytes"
               else "the 5 special tokens and a text's letters, digits and punctuation with their ## forms")
        raise DlfpError(f"the {kind} vocabulary size {vocab_size} is out of range; use between "
                        f"{MIN_VOCAB[kind]} ({why}) and {MAX_VOCAB}, e.g. 2048, 8192 or 16384")


def train_tokenizer(kind: str, text: str, vocab_size: int = 2048) -> Tokenizer:
    """A ``kind`` tokenizer trained on ``text`` (the training split only, so that validation text
    can hold unseen words); a BPE vocabulary has exactly ``vocab_size`` tokens when the text offers
    enough merges, fewer otherwise."""
    check_vocab_size(kind, vocab_size)
    if not text:
        raise DlfpError(f"cannot train the {kind} tokenizer on an empty text; check the training split")
    if kind == "char":
        return _char_tokenizer(text)
    if kind == "bpe_study":
        tok = _bpe_study()
        inner = _continuations(tok, text)
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS + inner,
                                      continuing_subword_prefix="##", show_progress=False)
    else:
        tok = _bpe_bytes()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                      show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_chunks(text), trainer)  # same words as the whole text, see _BOUNDARY
    if kind == "bpe_study":  # the ## forms become ordinary tokens of the model
        saved = json.loads(tok.to_str())
        saved["added_tokens"] = [t for t in saved["added_tokens"] if t["content"] in SPECIAL_TOKENS]
        tok = Tokenizer.from_str(json.dumps(saved))
    if tok.get_vocab_size() > vocab_size:
        raise DlfpError(f"the training text has {tok.get_vocab_size() - len(SPECIAL_TOKENS)} distinct "
                        f"characters and ## forms, more than the {kind} vocabulary size {vocab_size} "
                        f"leaves after the special tokens; use a vocabulary of at least "
                        f"{tok.get_vocab_size()}, or tokenizer=bpe_bytes")
    tok.encode_special_tokens = True
    return tok


def _bpe_study() -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=UNK, continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=True, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def _continuations(tok: Tokenizer, text: str) -> list[str]:
    """The ``##`` forms of the characters that follow another inside a word, sorted. The trainer
    numbers these in hash-map order as it meets them, and ties between equally frequent pairs go to
    the lower ids, so the same text gave another vocabulary on every run; handed to the trainer
    first (as special tokens, made ordinary afterwards), they are numbered the same every time."""
    words = " ".join(set(text.replace("\n", " ").split(" ")))  # the same pairs, 9x shorter for Shakespeare
    normal = tok.normalizer.normalize_str(words)
    is_word = np.zeros(0x110000, dtype=bool)  # by code point
    for c in set(normal):  # "aca" is one piece when c is part of words
        is_word[ord(c)] = len(tok.pre_tokenizer.pre_tokenize_str(f"a{c}a")) == 1
    codes = np.frombuffer(normal.encode("utf-32-le"), dtype=np.uint32)
    word = is_word[codes]
    return [f"##{chr(c)}" for c in np.unique(codes[1:][word[1:] & word[:-1]])]


def _bpe_bytes() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def _char_tokenizer(text: str) -> Tokenizer:
    """A BPE without merges and without a pre-tokenizer: each character of the text is a token,
    whitespace included (3x faster to encode than a per-character pre-tokenizer), and ``Fuse``
    decodes by concatenation."""
    chars = sorted(set(text) - set(SPECIAL_TOKENS))
    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *chars])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIAL_TOKENS)
    tok.encode_special_tokens = True
    return tok


def load_or_train(kind: str, text: str, vocab_size: int, *, cache_dir: Path,
                  source: dict[str, Any]) -> Tokenizer:
    """The cached tokenizer for this training ``text`` and these settings, else a newly trained one,
    cached atomically. ``source`` names where ``text`` came from (the corpus digest and its split);
    a cache whose record of what it was trained on differs from this run's, or that fails to load
    or check, is retrained and rewritten with a warning."""
    check_vocab_size(kind, vocab_size)
    record = {"format": FORMAT_VERSION, "kind": kind, "vocab_size": vocab_size,
              "train_sha256": hashlib.sha256(text.encode()).hexdigest(),
              "train_chars": len(text), **source}
    key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"tokenizer-{kind}-{vocab_size}-{key}.json"
    if cache.is_file():
        try:
            tok = _load_cache(cache, record)
            _check(tok, kind, vocab_size)
            log.info("reusing the %s tokenizer %s", kind, cache)
            return tok
        except Exception as e:  # noqa: BLE001 - a cache that fails any check is retrained, never trusted
            log.warning("retraining the tokenizer: the cache %s %s", cache, e)
    log.info("training the %s tokenizer (vocabulary %d) on %d characters", kind, vocab_size, len(text))
    tok = train_tokenizer(kind, text, vocab_size)
    try:
        _write_atomically(cache, json.dumps({"trained_on": record, "tokenizer": json.loads(tok.to_str())}))
    except OSError as e:  # a read-only cache folder: use the tokenizer without a cache
        log.warning("cannot write the tokenizer cache %s (%s); training again next time", cache,
                    e.strerror or e)
    return tok


def _load_cache(path: Path, record: dict[str, Any]) -> Tokenizer:
    """The tokenizer in a cache file, if the file's record of what it was trained on is ``record``."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ValueError("is damaged (not JSON)") from None
    trained_on = saved.get("trained_on") if isinstance(saved, dict) else None
    if not isinstance(trained_on, dict) or "tokenizer" not in saved:
        raise ValueError("does not record what it was trained on (a plain tokenizer file, or damaged)")
    differences = [f"{key} {trained_on.get(key)!r}, not {value!r}" for key, value in record.items()
                   if trained_on.get(key) != value]
    if differences:
        raise ValueError(f"was trained on other text or settings ({'; '.join(differences)})")
    try:
        tok = Tokenizer.from_str(json.dumps(saved["tokenizer"]))
    except Exception as e:  # noqa: BLE001 - the tokenizers library raises plain Exception
        raise ValueError(f"is damaged ({e})") from None
    tok.encode_special_tokens = True
    return tok


def save_tokenizer(tok: Tokenizer, path: Path) -> None:
    """``tok`` as ``tokenizer.json`` at ``path``, written atomically."""
    _write_atomically(Path(path), tok.to_str())


def _write_atomically(path: Path, content: str) -> None:
    """``content`` at ``path`` through a unique temporary file, so that parallel runs of a sweep
    never read half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check(tok: Tokenizer, kind: str, vocab_size: int) -> None:
    specials = [tok.token_to_id(t) for t in SPECIAL_TOKENS]
    if specials != list(range(len(SPECIAL_TOKENS))):
        raise ValueError(f"has special tokens at ids {specials}, not 0..4")
    if _kind_of(tok) != kind:
        raise ValueError(f"holds a {_kind_of(tok)} tokenizer, not {kind}")
    if kind != "char" and tok.get_vocab_size() > vocab_size:
        raise ValueError(f"has {tok.get_vocab_size()} tokens, more than {vocab_size}")


def _kind_of(tok: Tokenizer) -> str | None:
    """Which kind ``tok`` is, told by its decoder."""
    kinds = {decoders.WordPiece: "bpe_study", decoders.ByteLevel: "bpe_bytes", decoders.Fuse: "char"}
    return kinds.get(type(tok.decoder))


def encode(tok: Tokenizer, text: str) -> np.ndarray:
    """The int32 token ids of a whole text, without special tokens. The text is cut into chunks of
    about 64K characters at newlines, encoded in parallel, and the ids concatenated: the same ids as
    encoding it in one piece (see ``_BOUNDARY``), several times faster."""
    tok.encode_special_tokens = True
    batch = getattr(tok, "encode_batch_fast", tok.encode_batch)  # tokenizers >= 0.21: no offsets
    pieces = [np.asarray(e.ids, dtype=np.int32) for e in batch(list(_chunks(text)), add_special_tokens=False)]
    return np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int32)


def _chunks(text: str) -> Iterator[str]:
    start = 0
    while start < len(text):
        cut = _BOUNDARY.search(text, start + CHUNK_CHARS)
        end = cut.start() if cut else len(text)
        yield text[start:end]
        start = end


def decode(tok: Tokenizer, ids: Sequence[int]) -> str:
    """The text of ``ids``, special tokens (``[UNK]`` too) skipped. For ``bpe_study``, which lost
    the spacing, an apostrophe or hyphen between two letters is also rejoined (``isn ' t`` ->
    ``isn't``, right for 4 in 5 apostrophes in Shakespeare) and no space is put before ``;:)]`` or
    after ``([``; ``tok.decode`` alone leaves those spaces."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= tok.get_vocab_size()):
        raise DlfpError(f"token id {ids.min() if ids.min() < 0 else ids.max()} is outside this tokenizer's "
                        f"{tok.get_vocab_size()} tokens; decode with the tokenizer.json the model was "
                        "trained with")
    text = tok.decode(ids.tolist(), skip_special_tokens=True)
    return _rejoin(text) if _kind_of(tok) == "bpe_study" else text


_REJOIN = [(re.compile(r"(?<=\w) ([-']) (?=\w)"), r"\1"), (re.compile(r" ([;:)\]])"), r"\1"),
           (re.compile(r"([(\[]) "), r"\1")]


def _rejoin(text: str) -> str:
    for pattern, repl in _REJOIN:
        text = pattern.sub(repl, text)
    return text


def generate_text(model: TransformerLM, tokenizer: Tokenizer, prompt: str, sample_cfg: Any,
                  use_cache: bool = True) -> str:
    """The prompt and ``new_tokens`` sampled tokens as text (the same text for the same seed);
    ``sample_cfg`` has the fields of ``lm.sample`` (dlfp.config.lm.SampleConfig)."""
    device = next(model.parameters()).device
    ids = tokenizer.encode(prompt).ids or [tokenizer.token_to_id(SEP)]
    generator = torch.Generator(device).manual_seed(sample_cfg.seed)
    tokens = model.generate(torch.tensor([ids], device=device), sample_cfg.new_tokens,
                            temperature=sample_cfg.temperature, top_k=sample_cfg.top_k,
                            top_p=sample_cfg.top_p, generator=generator, use_cache=use_cache)
    return decode(tokenizer, tokens[0].tolist())
