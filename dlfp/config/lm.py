"""tokenizer=, corpus= and lm=: the language-model study (experiment=lm, experiment=lm_bench)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from dlfp.config.checks import SEED, Rule, limit


class TokenizerKind(StrEnum):
    bpe_study = "bpe_study"  # the study's: lowercased, accents stripped, split at punctuation, "##" subwords
    bpe_bytes = "bpe_bytes"  # byte-level BPE, no normalisation: decode(encode(x)) == x
    char = "char"  # one token per character of the training text


@dataclass
class TokenizerConfig:
    kind: TokenizerKind = TokenizerKind.bpe_study
    vocab_size: int = limit(2048, ge=8)  # ignored by char (its vocabulary is the training text's alphabet)


@dataclass
class CorpusConfig:
    files: list[str] = field(default_factory=list)  # UTF-8 files: paths or globs (cwd, then data_dir)
    gutenberg: list[int] = limit(factory=list, ge=1)  # Project Gutenberg ebook ids, downloaded and cached
    download: bool = True  # fetch missing Gutenberg books (else: an error saying where to put them)
    val_fraction: float = limit(0.1, gt=0, lt=1)  # the last fraction of each file's characters validates
    generated_chars: int | None = limit(None, ge=1000)  # instead: a generated text of known entropy
    generated_seed: int = limit(0, **SEED)

    RULES: ClassVar = (Rule(("files", "gutenberg", "generated_chars"),
                            lambda files, books, generated: bool(files or books) != (generated is not None),
                            "name text files or Gutenberg books, or set generated_chars, not both"),)


class BatchKind(StrEnum):
    packed = "packed"  # contiguous windows of context + 1 tokens cut from the token stream
    padded = "padded"  # the study's: one paragraph per sequence, padded, with the key-padding mask


@dataclass
class SampleConfig:
    prompts: list[str] = field(default_factory=lambda: [
        "The Eiffel Tower is in Paris", "Sherlock Holmes looked at the", "To be or not to"])
    new_tokens: int = limit(100, ge=1)
    temperature: float = limit(0.9, ge=0)  # 0: the most likely token each step
    top_k: int | None = limit(40, ge=1)
    top_p: float | None = limit(None, gt=0, le=1)
    seed: int = limit(0, **SEED)


@dataclass
class LMSectionConfig:
    batches: BatchKind = BatchKind.padded
    eval_tokens: int | None = limit(None, ge=1)  # validation tokens scored during training (null: all)
    sample: SampleConfig = field(default_factory=SampleConfig)


SCHEMAS = {"tokenizer": {"tokenizer": TokenizerConfig}, "corpus": {"corpus": CorpusConfig},
           "lm": {"lm": LMSectionConfig}}
