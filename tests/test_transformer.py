"""The Transformer language model's parts: the positional encoding formula, causality, the
key-padding mask, written-out attention against scaled_dot_product_attention, and cached against
uncached generation."""

from __future__ import annotations

import math

import pytest
import torch

from dlfp.models.transformer import TransformerLM, sample_next, sinusoidal_encoding


def tiny(**kw) -> TransformerLM:
    torch.manual_seed(0)
    return TransformerLM(vocab_size=50, d_model=32, heads=2, layers=2, context=16, **kw).eval()


def test_positional_encoding_is_the_papers_formula() -> None:
    pe = sinusoidal_encoding(20, 8)
    for pos, i in [(0, 0), (3, 1), (7, 2), (19, 3)]:
        angle = pos / 10000 ** (2 * i / 8)
        assert pe[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-6)
        assert pe[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-6)


@pytest.mark.parametrize("sdpa", [False, True])
def test_changing_a_future_token_leaves_earlier_logits_unchanged(sdpa: bool) -> None:
    model = tiny(sdpa=sdpa)
    tokens = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(1))
    changed = tokens.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 50
    with torch.no_grad():
        a, b = model(tokens)[0], model(changed)[0]
    assert torch.equal(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


@pytest.mark.parametrize("sdpa", [False, True])
def test_padded_positions_are_invisible_to_real_ones(sdpa: bool) -> None:
    model = tiny(sdpa=sdpa)
    tokens = torch.randint(1, 50, (2, 10), generator=torch.Generator().manual_seed(2))
    padding = torch.zeros(2, 10, dtype=torch.bool)
    padding[0, :3] = True  # left padding: real queries would otherwise attend to these keys
    other = tokens.clone()
    other[0, :3] = 0
    with torch.no_grad():
        a, b = model(tokens, padding)[0], model(other, padding)[0]
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a[0, 3:], b[0, 3:], atol=1e-6, rtol=0)
    torch.testing.assert_close(a[1], b[1])


@pytest.mark.parametrize("sdpa", [False, True])
def test_left_padding_changes_no_real_tokens_logits(sdpa: bool) -> None:
    """Positions count real tokens only: a row padded at the start (or not at all, or at the end)
    gives its real tokens the same logits. With absolute positions they moved by up to 2.2."""
    model = tiny(sdpa=sdpa)
    tokens = torch.randint(1, 50, (1, 9), generator=torch.Generator().manual_seed(7))
    left = torch.cat([torch.zeros(1, 4, dtype=torch.long), tokens], dim=1)
    right = torch.cat([tokens, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    pad_left, pad_right = left == 0, right == 0
    with torch.no_grad():
        alone = model(tokens)[0][0]
        torch.testing.assert_close(model(left, pad_left)[0][0, 4:], alone, atol=1e-5, rtol=0)
        torch.testing.assert_close(model(right, pad_right)[0][0, :9], alone, atol=1e-5, rtol=0)


def test_written_out_attention_equals_scaled_dot_product_attention() -> None:
    written, fused = tiny(), tiny(sdpa=True)
    fused.load_state_dict(written.state_dict())
    tokens = torch.randint(0, 50, (3, 16), generator=torch.Generator().manual_seed(3))
    padding = torch.zeros(3, 16, dtype=torch.bool)
    padding[1, :5] = True
    with torch.no_grad():
        torch.testing.assert_close(written(tokens, padding)[0], fused(tokens, padding)[0], atol=1e-5, rtol=0)


def test_cached_logits_and_generation_equal_uncached() -> None:
    model = tiny()
    tokens = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        full = model(tokens)[0]
        _, cache = model(tokens[:, :5])
        step, _ = model(tokens[:, 5:6], cache=cache)
    torch.testing.assert_close(step[:, 0], full[:, 5], atol=1e-5, rtol=0)
    prompt = tokens[:, :4]
    runs = [model.generate(prompt, 20, temperature=0.9, top_k=10, use_cache=cached,
                           generator=torch.Generator().manual_seed(5)) for cached in (True, False)]
    assert runs[0].shape == (2, 24) and torch.equal(runs[0], runs[1])  # 24 > context 16: the window slides


def test_top_k_one_and_a_tiny_top_p_are_greedy() -> None:
    logits = torch.randn(4, 30, generator=torch.Generator().manual_seed(6))
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sample_next(logits, 1.0, 1, None, g), logits.argmax(-1))
    assert torch.equal(sample_next(logits, 1.0, None, 1e-6, g), logits.argmax(-1))
    assert torch.equal(sample_next(logits, 0.0, None, None, g), logits.argmax(-1))


@pytest.mark.parametrize("padded", [False, True])
def test_loss_is_the_next_token_cross_entropy_the_task_trained_on(padded: bool) -> None:
    """model.loss(batch) equals the LM task's former step loss, written out here, bit for bit."""
    model = tiny().train()
    x = torch.randint(5, 50, (3, 9))
    batch = {"x": x, "length": torch.tensor([9, 4, 6])} if padded else {"x": x}
    inputs, targets, padding = x[:, :-1], x[:, 1:], None
    if padded:
        padding = torch.arange(8)[None, :] >= (batch["length"][:, None] - 1)
        targets = targets.masked_fill(padding, -100)
    logits, _ = model(inputs, padding=padding)
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(),
                                                 ignore_index=-100)
    assert torch.equal(model.loss(batch), expected)
