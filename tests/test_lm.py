"""The language-model task: token rows, bits per character against a source of known entropy, tiny
runs of each tokenizer, generation from a checkpoint alone, resume, and its errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import crash_and_resume, read_summary, run_cli, run_inprocess
from torch import nn

from dlfp.data.markov_text import ALPHABET, entropy_rate, markov_chain, markov_text
from dlfp.data.token_windows import packed_windows, padded_sequences, paragraphs, scoring_windows
from dlfp.errors import DlfpError
from dlfp.models.transformer import TransformerLM
from dlfp.tasks.lm import ValText, score

TINY = ["experiment=lm", "hardware=cpu", "hardware.threads=1", "model.d_model=32", "model.heads=2",
        "model.head_dim=null", "model.layers=1", "model.context=16", "train.batch_size=8", "train.steps=20",
        "train.eval_every=10", "train.log_every=5", "train.checkpoint_every=10", "lm.eval_tokens=512",
        "lm.sample.new_tokens=12"]  # the study's corpus (downloaded books) unless a corpus is named
TINY_LM = [*TINY, "corpus=generated", "corpus.generated_chars=20000"]


def test_packed_windows_overlap_by_one_token_and_cover_the_stream() -> None:
    ids = np.arange(23)
    rows = packed_windows(ids, context=5).x
    assert rows.shape == (4, 6)
    assert torch.equal(rows[:, 1:].flatten(), torch.arange(1, 21))  # each target once, in order
    assert torch.equal(rows[1:, 0], rows[:-1, -1])


def test_scoring_windows_score_every_token_once_the_first_from_the_separator() -> None:
    rows, targets = scoring_windows(np.arange(10, 21), context=4, first_id=3, pad_id=0)
    assert targets == 11 and rows.shape == (3, 5)
    real = rows[:, 1:].flatten()[:targets]
    assert torch.equal(real, torch.arange(10, 21)) and rows[0, 0] == 3
    assert (rows[:, 1:].flatten()[targets:] == 0).all()


def test_padded_sequences_are_paragraph_pieces_with_their_lengths() -> None:
    assert paragraphs("a b\n\nc\n  \n\nd\n") == ["a b", "c", "d\n"]
    split = padded_sequences([[5, 6, 7, 8, 9, 10, 11], [12], [13, 14]], context=3, pad_id=0)
    assert split.x.tolist() == [[5, 6, 7, 8], [9, 10, 11, 0], [13, 14, 0, 0]]  # [12] predicts nothing
    assert split.length.tolist() == [4, 3, 2]


def test_padding_is_neither_attended_to_nor_scored() -> None:
    """Changing a padded token changes neither the model's loss nor the gradient; the loss is the
    mean over the real next tokens only."""
    torch.manual_seed(0)
    model = TransformerLM(vocab_size=20, d_model=16, heads=2, layers=1, context=8)
    x = torch.tensor([[5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14]])
    length = torch.tensor([4, 6])
    other = x.clone()
    other[0, 4:] = torch.tensor([17, 18])
    loss = model.loss({"x": x, "length": length})
    assert torch.equal(loss, model.loss({"x": other, "length": length}))
    logits, _ = model(x[:, :-1], padding=torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool))
    per_target = nn.functional.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten(), reduction="none")
    real = torch.tensor([1, 1, 1, 0, 0, 1, 1, 1, 1, 1], dtype=torch.bool)
    assert torch.allclose(loss, per_target[real].mean(), atol=1e-6)


class MarkovOracle(nn.Module):
    """Logits = log P(next | current) of the generating chain: the best model there is."""

    def __init__(self, transitions: np.ndarray) -> None:
        super().__init__()
        self.log_p = torch.tensor(np.log(transitions), dtype=torch.float32)

    def forward(self, tokens: torch.Tensor, padding: torch.Tensor | None = None):
        return self.log_p[tokens.clamp_max(len(self.log_p) - 1)], None


def test_bits_per_character_of_the_true_source_is_its_entropy_rate() -> None:
    """score() on a character stream equals the directly computed mean -log2 P(next | current),
    and for the generating chain that is its entropy rate, within the sampling error."""
    text, rate = markov_text(40_000, seed=0)
    assert rate == pytest.approx(entropy_rate(markov_chain(0)))
    ids = np.array([ALPHABET.index(c) for c in text])
    oracle = MarkovOracle(markov_chain(0))
    rows, targets = scoring_windows(ids[1:], context=64, first_id=int(ids[0]), pad_id=-1)
    rows = rows.clamp_min(0)  # pad with a real id: padded targets are then excluded by the count below
    val = ValText(rows[:-1], (len(rows) - 1) * 64, (len(rows) - 1) * 64)  # whole rows only
    result = score(oracle, val, batch_rows=32, pad_id=-1)
    direct = -np.log2(markov_chain(0)[ids[:-1], ids[1:]])[: val.tokens].mean()
    assert result["bpc"] == pytest.approx(direct, rel=1e-5)
    assert result["bpc"] == pytest.approx(rate, abs=0.03)  # 40k characters: standard error ~0.01
    assert result["loss"] == pytest.approx(result["bpc"] * math.log(2), rel=1e-6)  # one char per token


def test_a_small_model_learns_the_generated_source_close_to_its_entropy(tmp_path: Path) -> None:
    summary = run_inprocess([*TINY_LM, "tokenizer=char", "lm.batches=packed", "train.steps=300",
                             "train.batch_size=32", "optimizer.lr=1e-2", "train.eval_every=300",
                             "train.checkpoint_every=300", "lm.eval_tokens=null",
                             "corpus.generated_chars=60000",
                             f"paths.data_dir={tmp_path}"], tmp_path / "run")
    metrics = summary["metrics"]
    floor = metrics["corpus/entropy_bpc"]
    assert floor - 0.05 < metrics["val/bpc"] < floor + 0.15, (metrics["val/bpc"], floor)


@pytest.mark.parametrize("tokenizer", ["bpe_bytes", "char"])
def test_tiny_runs_of_the_lossless_tokenizers(tmp_path: Path, tokenizer: str) -> None:
    run_dir = tmp_path / "run"
    summary = run_inprocess([*TINY_LM, f"tokenizer={tokenizer}", "tokenizer.vocab_size=300",
                             "lm.batches=packed", f"paths.data_dir={tmp_path}"], run_dir)
    m = summary["metrics"]
    assert m["steps"] == 20 and m["val/chars"] == 2000  # the last 10% of 20,000 characters
    assert 0 < m["val/bpc"] < 8 and m["val/perplexity"] == pytest.approx(math.exp(m["val/loss"]))
    assert (run_dir / "tokenizer.json").is_file() and (run_dir / "plots" / "loss.png").is_file()
    assert (run_dir / "samples.txt").read_text().count("--- ") == 3


def test_the_studys_tokenizer_through_the_cli_with_samples_and_generation(tmp_path: Path, capsys) -> None:
    """bpe_study on a real text file, padded paragraphs: the run writes its figure, tokenizer and
    samples; dlfp-generate on the checkpoint alone reproduces a sample."""
    from dlfp.generate import main as generate

    words = ["the", "eiffel", "tower", "is", "in", "paris", "sherlock", "holmes", "looked", "at", "to", "be"]
    rng = np.random.default_rng(0)
    paragraphs_ = [" ".join(rng.choice(words, 12)).capitalize() + "." for _ in range(600)]
    (tmp_path / "book.txt").write_text("\n\n".join(paragraphs_), encoding="utf-8")
    run_dir = tmp_path / "run"
    run_cli([*TINY_LM, "corpus=shakespeare", "corpus.files=[book.txt]", "corpus.generated_chars=null",
             "tokenizer.vocab_size=100", f"paths.data_dir={tmp_path}", f"hydra.run.dir={run_dir}"],
            cwd=tmp_path)
    summary = read_summary(run_dir)
    text = (tmp_path / "book.txt").read_text()
    assert summary["metrics"]["val/chars"] == len(text[int(len(text) * 0.9):])
    samples = (run_dir / "samples.txt").read_text()
    first = samples.split("--- ")[1].split("\n", 1)[1].strip()
    assert first.startswith("the eiffel tower is in paris")  # decoded words, not "##" pieces
    assert generate([str(run_dir), "--prompt", "The Eiffel Tower is in Paris"]) == 0
    assert first in capsys.readouterr().out
    assert (run_dir / "plots" / "loss.png").stat().st_size > 10_000


def test_the_benchmark_recipe_runs_on_generated_text(tmp_path: Path) -> None:
    summary = run_inprocess(["experiment=lm_bench", "corpus=generated", "corpus.files=[]",
                             "corpus.generated_chars=20000", "train.steps=10", "train.eval_every=5",
                             "schedule.warmup_steps=2", "lm.sample.new_tokens=5",
                             f"paths.data_dir={tmp_path}"],
                            tmp_path / "run")
    assert summary["metrics"]["steps"] == 10 and summary["threads"] == 1


def test_a_crashed_run_resumes_exactly(tmp_path: Path) -> None:
    resumed, straight = crash_and_resume([*TINY_LM, "tokenizer=char", f"paths.data_dir={tmp_path}"],
                                         tmp_path, crash_after=14)
    assert read_summary(resumed)["metrics"] == read_summary(straight)["metrics"]
    assert (resumed / "metrics.jsonl").read_text() == (straight / "metrics.jsonl").read_text()
    assert (resumed / "samples.txt").read_text() == (straight / "samples.txt").read_text()


def test_bits_per_character_count_the_characters_as_read() -> None:
    """bpe_study's normaliser puts spaces around CJK characters and drops zero-width spaces: the
    characters are those of the text as read (4 + 1 + 7 here), not of the normalised text (12 for
    the first four)."""
    from dlfp.data.corpus import Corpus
    from dlfp.data.tokenizer import encode, train_tokenizer
    from dlfp.tasks.lm import validation_text

    val = "你好世界\u200bhello w"
    tok = train_tokenizer("bpe_study", "hello world 你好世界 " * 50, 100)
    corpus = Corpus(train="", val=val, sources=[], sha256="0")
    assert validation_text(tok, corpus, encode(tok, val), 8, torch.device("cpu")).chars == 12 == len(val)


def _refused(overrides: list[str], run_dir: Path, match: str, monkeypatch: pytest.MonkeyPatch,
             before: str | None) -> str:
    """Runs ``overrides``, expecting DlfpError ``match`` with nothing of the run's own written;
    ``before`` names the step that must not have happened: "data" (the corpus was never read),
    "tokenizer" (no tokenizer was trained) or None."""
    from dlfp.tasks import lm

    def never(*args, **kwargs):
        raise AssertionError(f"reached {before} before refusing")

    if before == "data":
        monkeypatch.setattr(lm, "read_corpus", never)
    if before == "tokenizer":
        monkeypatch.setattr(lm, "load_or_train", never)
    with pytest.raises(DlfpError, match=match) as raised:
        run_inprocess(overrides, run_dir)
    assert not (run_dir / "tokenizer.json").exists() and not (run_dir / "checkpoints").exists()
    return str(raised.value)


@pytest.mark.parametrize("overrides, match, before", [
    (["schedule.warmup_steps=20"], r"schedule.warmup_steps=20 must be below the run's 20 updates", "data"),
    (["schedule=cosine", "schedule.warmup_steps=30"], "must be below the run's 20 updates", "data"),
    (["tokenizer=bpe_bytes", "tokenizer.vocab_size=300", "model.vocab_size=299"],
     r"model.vocab_size=299 differs from tokenizer.vocab_size=300; set model.vocab_size=null", "data"),
    (["tokenizer=char", "model.vocab_size=30"],
     r"model.vocab_size=30 differs from the char tokenizer's 21 tokens", None),
    (["train.steps=null", "train.epochs=1", "schedule.warmup_steps=10000", "tokenizer=char"],
     "schedule.warmup_steps=10000 must be below the run's \\d+ updates", None),
])
def test_refused_settings_stop_before_the_expensive_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         overrides: list[str], match: str,
                                                         before: str | None) -> None:
    """What the config decides is refused before the corpus is read; what needs the tokenizer or
    the batches, right after them: either way before the run writes its tokenizer.json."""
    _refused([*TINY_LM, f"paths.data_dir={tmp_path}", *overrides], tmp_path / "run", match, monkeypatch,
             before)


def test_a_warmup_longer_than_any_updates_budget_is_refused_before_the_task(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every experiment with a budget in updates: the schedule is built against it before the task
    starts (so before its data loads)."""
    from dlfp import runner

    monkeypatch.setattr(runner, "get_task", lambda name: pytest.fail("the task started"))
    with pytest.raises(DlfpError, match="schedule.warmup_steps=5 must be below the run's 5 updates"):
        run_inprocess(["experiment=mnist_nn_torch", "train.steps=5", "train.epochs=null",
                       "schedule.warmup_steps=5"], tmp_path / "run")


def test_a_corpus_too_small_for_one_window_is_one_clear_error(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Too few bytes: refused before any tokenizer is trained. Enough bytes but too few tokens
    (byte-level BPE merges "ab" runs): refused after tokenizing, before the run's tokenizer.json."""
    (tmp_path / "short.txt").write_text("To be or not to be, that is the question.\n")
    (tmp_path / "merged.txt").write_text("ab" * 1000)
    base = [*TINY, "corpus=shakespeare", "tokenizer=bpe_bytes", "tokenizer.vocab_size=300",
            f"paths.data_dir={tmp_path}"]
    _refused([*base, "corpus.files=[short.txt]"], tmp_path / "short", r"corpus is too small: its validation "
             r"split \(short.txt\) has 5 bytes of text, so at most 5 tokens", monkeypatch, "tokenizer")
    monkeypatch.undo()
    _refused([*base, "corpus.files=[merged.txt]", "model.context=150"], tmp_path / "merged",
             r"too small: its training split \(merged.txt\) has \d+ tokens and", monkeypatch, None)


def test_the_offline_advice_works_when_followed_literally(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The study's books cannot be downloaded: the error's advice, typed after the same command,
    trains on local text without a download (a corpus.files override alone kept the books)."""
    import re

    from dlfp.data import corpus
    from dlfp.data.markov_text import markov_text

    def offline(url: str) -> bytes:
        raise OSError("network unreachable")

    monkeypatch.setattr(corpus, "fetch", offline)
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "shakespeare.txt").write_text(markov_text(20_000, seed=1)[0])
    (tmp_path / "mine.txt").write_text(markov_text(20_000, seed=2)[0])
    command = [*TINY, "train.steps=2", "lm.sample.new_tokens=2", f"paths.data_dir={tmp_path}"]
    with pytest.raises(DlfpError, match="network unreachable") as raised:
        run_inprocess(command, tmp_path / "failed")
    advice = re.findall(r"corpus[.=]\S+", str(raised.value))
    assert advice == ["corpus=shakespeare", "corpus.gutenberg=[]", "corpus.files=[path/to/text.txt]"]
    followed = [[advice[0]], [advice[1], advice[2].replace("path/to/text.txt", str(tmp_path / "mine.txt"))]]
    for i, extra in enumerate(followed):
        assert run_inprocess([*command, *extra], tmp_path / f"run{i}")["metrics"]["steps"] == 2


def test_generation_from_a_checkpoint_of_another_task_is_one_clear_error(tmp_path: Path, capsys) -> None:
    from dlfp.generate import main as generate

    assert generate([str(tmp_path)]) == 1
    assert "holds no checkpoint" in capsys.readouterr().err
