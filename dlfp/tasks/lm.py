"""A decoder-only Transformer language model, trained and measured in bits per character.

Recipe: check what the config alone decides, read the corpus (the last ``corpus.val_fraction`` of
each file validates), train the tokenizer on the training text only (cached by what it was trained
on), cut the token stream into packed windows or the study's padded paragraphs, check the corpus,
vocabulary and schedule against them, save the run's ``tokenizer.json`` (also kept inside the
checkpoint), train next-token cross-entropy with the shared driver, then score the whole validation
text: loss per token, perplexity and bits per character (the total negative log-likelihood over
the validation text's characters, as read, and ln 2: the unit that compares tokenizers). Finally
sample the configured prompts into ``samples.txt`` and plot the curves. Every check comes before
the run's first file, so a refused run leaves nothing behind.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from tokenizers import Tokenizer

from dlfp.data.corpus import Corpus, check_long_enough, load_corpus
from dlfp.data.loader import Loader
from dlfp.data.markov_text import markov_corpus
from dlfp.data.token_windows import packed_windows, padded_sequences, paragraphs, scoring_windows
from dlfp.data.tokenizer import (
    PAD,
    SEP,
    check_vocab_size,
    encode,
    generate_text,
    load_or_train,
    save_tokenizer,
)
from dlfp.engine.driver import fit
from dlfp.engine.optim import build_optimizer
from dlfp.engine.run import Run
from dlfp.engine.schedules import check_budget
from dlfp.engine.updates import TorchUpdate
from dlfp.errors import DlfpError
from dlfp.models import build_model
from dlfp.models.transformer import TransformerLM, next_token_loss
from dlfp.viz.curves import plot_curves

log = logging.getLogger(__name__)


@dataclass
class ValText:
    """The validation text as the model scores it: rows covering every token once, and the
    number of characters the bits-per-character divide by."""

    rows: torch.Tensor
    tokens: int
    chars: int


def run(cfg: DictConfig, run: Run) -> dict[str, float]:
    hw = run.hw
    kind = check_config(cfg)
    corpus, entropy_rate = read_corpus(cfg.corpus, cfg.paths.data_dir)
    context = cfg.model.context
    check_long_enough(corpus, context + 1)  # by bytes: before the tokenizer is trained
    tokenizer = load_or_train(kind, corpus.train, cfg.tokenizer.vocab_size,
                              cache_dir=Path(cfg.paths.cache_dir) / "tokenizers",
                              source={"corpus_sha256": corpus.sha256,
                                      "val_fraction": cfg.corpus.val_fraction})
    pad_id = tokenizer.token_to_id(PAD)
    train_ids, val_ids = encode(tokenizer, corpus.train), encode(tokenizer, corpus.val)
    check_long_enough(corpus, context + 1, (len(train_ids), len(val_ids)))
    log.info("corpus: %s training and %s validation characters -> %s and %s %s tokens (vocabulary %d)",
             f"{len(corpus.train):,}", f"{len(corpus.val):,}", f"{len(train_ids):,}", f"{len(val_ids):,}",
             kind, tokenizer.get_vocab_size())
    check_model_vocabulary(cfg.model.vocab_size, tokenizer.get_vocab_size(),
                           f"the {kind} tokenizer's {tokenizer.get_vocab_size()} tokens")

    model: TransformerLM = build_model(cfg.model, vocab_size=tokenizer.get_vocab_size())
    model.to(hw.device)
    lcfg = cfg.lm
    if lcfg.batches == "packed":
        split = packed_windows(train_ids, context)
    else:
        split = padded_sequences([e.ids for e in tokenizer.encode_batch(paragraphs(corpus.train))],
                                 context, pad_id)
    loader = Loader(split.to(hw.device), cfg.train.batch_size, shuffle=True, seed=cfg.seed,
                    rank=hw.ranks.rank, world_size=hw.ranks.world_size)
    check_budget(cfg.schedule, cfg.train, steps_per_epoch=len(loader))  # an epoch budget is known now
    if hw.ranks.is_main:  # the run's first file, after every check
        save_tokenizer(tokenizer, run.dir / "tokenizer.json")
    val = validation_text(tokenizer, corpus, val_ids, context, hw.device)
    during = val if lcfg.eval_tokens is None else truncated(val, lcfg.eval_tokens, context)

    def evaluate_val(net: torch.nn.Module) -> dict[str, dict[str, float]]:
        return {"val": score(net, during, cfg.train.eval_batch_size, pad_id)}

    update = TorchUpdate(model, build_optimizer(cfg.optimizer, model), hw, cfg.train)
    result = fit(update, loader, evaluate_val, run=run, train_cfg=cfg.train, schedule=cfg.schedule,
                 resume=cfg.resume, task_state={"tokenizer": TokenizerState(tokenizer)})
    if not hw.ranks.is_main:  # rank 0 alone scores, samples and writes
        return {}

    final = result.evaluation.get("val") if during is val else None  # the last evaluation, when whole
    if final is None:
        model.eval()
        with torch.no_grad():
            final = score(model, val, cfg.train.eval_batch_size, pad_id)
    summary = {"steps": float(result.steps), "train_tokens": float(len(train_ids)),
               **{f"val/{k}": v for k, v in final.items()}}
    if entropy_rate is not None:  # the floor of any model's bits per character on this text
        summary["corpus/entropy_bpc"] = entropy_rate
    if lcfg.batches == "packed":  # every row is context tokens (padded rows vary)
        run.timings["tokens_per_second"] = round(result.steps * loader.batch_size * context
                                                 / max(result.train_seconds, 1e-9), 1)
    write_samples(model, tokenizer, lcfg.sample, run.dir / "samples.txt")
    records = run.metrics.records()
    plot_curves({"train": [r for r in records if r["split"] == "train"],
                 "validation": [r for r in records if r["split"] == "val"]},
                "loss", run.plots_dir / "loss.png", title="cross-entropy per token", ylabel="nats per token")
    return summary


def check_config(cfg: DictConfig) -> str:
    """What the config alone decides, before any text is read: the tokenizer's kind and size, and a
    model vocabulary that cannot match a BPE tokenizer's. Returns the tokenizer's kind."""
    kind = cfg.tokenizer.kind
    check_vocab_size(kind, cfg.tokenizer.vocab_size)
    if kind != "char":  # a BPE has tokenizer.vocab_size tokens (fewer only when the text runs out of merges)
        size = cfg.tokenizer.vocab_size
        check_model_vocabulary(cfg.model.vocab_size, size, f"tokenizer.vocab_size={size}")
    return kind


def check_model_vocabulary(model_vocab: int | None, tokens: int, tokenizer: str) -> None:
    """``model.vocab_size`` is null (the tokenizer's) or the tokenizer's size: a smaller output layer
    cannot score every token, a larger one samples ids the tokenizer cannot decode."""
    if model_vocab is not None and model_vocab != tokens:
        raise DlfpError(f"model.vocab_size={model_vocab} differs from {tokenizer}; set "
                        "model.vocab_size=null (the tokenizer's size)")


def read_corpus(cfg: DictConfig, data_dir: str) -> tuple[Corpus, float | None]:
    """The configured text, and its entropy rate in bits per character when it is generated."""
    if cfg.generated_chars is not None:
        return markov_corpus(cfg.generated_chars, cfg.generated_seed, cfg.val_fraction)
    return load_corpus(list(cfg.files), data_dir=data_dir, val_fraction=cfg.val_fraction,
                       gutenberg=list(cfg.gutenberg), download=cfg.download), None


def validation_text(tokenizer: Tokenizer, corpus: Corpus, val_ids: np.ndarray, context: int,
                    device: torch.device) -> ValText:
    """Every validation token scored once, the first from [SEP] alone. Characters are counted in
    the text as read, whatever the tokenizer's normaliser drops or expands (bpe_study's)."""
    rows, tokens = scoring_windows(val_ids, context, tokenizer.token_to_id(SEP), tokenizer.token_to_id(PAD))
    return ValText(rows.to(device), tokens, len(corpus.val))


def truncated(val: ValText, tokens: int, context: int) -> ValText:
    """The first ``tokens`` validation tokens (whole rows), with the characters they cover
    estimated at the whole text's characters per token: a quick estimate during training;
    ``val`` itself when it has no more rows than that."""
    rows = min(len(val.rows), max(1, tokens // context))
    if rows == len(val.rows):
        return val
    kept = min(val.tokens, rows * context)
    return ValText(val.rows[:rows], kept, round(val.chars * kept / val.tokens))


def score(net: torch.nn.Module, val: ValText, batch_rows: int, pad_id: int) -> dict[str, float]:
    """Loss per token (nats), perplexity and bits per character over ``val``."""
    total = 0.0
    for rows in val.rows.split(max(1, batch_rows)):  # the training loss's terms, [PAD] targets ignored
        total += next_token_loss(net, rows, ignore_index=pad_id, reduction="none").sum().item()
    loss = total / val.tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)),
            "bpc": total / (val.chars * math.log(2)), "tokens": float(val.tokens), "chars": float(val.chars)}


def write_samples(model: TransformerLM, tokenizer: Tokenizer, sample_cfg: DictConfig, path: Path) -> None:
    """Each prompt, then the model's continuation, decoded faithfully (subwords rejoined)."""
    texts = [f"--- {prompt}\n{generate_text(model, tokenizer, prompt, sample_cfg)}\n"
             for prompt in sample_cfg.prompts]
    path.write_text("\n".join(texts))


class TokenizerState:
    """The tokenizer inside the checkpoint, so that a checkpoint alone can generate text."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.json = tokenizer.to_str()

    def state_dict(self) -> dict[str, Any]:
        return {"json": self.json}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if str(state["json"]) != self.json:
            raise DlfpError("the checkpoint's tokenizer differs from the one this run trained; resume "
                            "with the same corpus and tokenizer settings")
