"""GENERATED text of known entropy: characters from a fixed random first-order Markov chain.

Offline smoke runs of the language model need some text, and a test of bits per character needs a
text whose best possible score is known: for a stationary Markov chain it is the entropy rate
H = sum_i pi_i H(P_i), with pi the stationary distribution and P_i the transition row of state i.
A model that learns the transitions scores H bits per character; none can do better on average.
"""

from __future__ import annotations

import hashlib

import numpy as np

from dlfp.data.corpus import Corpus

ALPHABET = "etaoin shrdlu\n.,"  # 16 symbols, whitespace included so tokenizers see "words"


def markov_chain(seed: int, concentration: float = 0.3) -> np.ndarray:
    """A transition matrix (rows sum to 1); a small Dirichlet concentration makes it predictable."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(len(ALPHABET), concentration), size=len(ALPHABET))


def entropy_rate(transitions: np.ndarray) -> float:
    """Bits per character of the chain in its stationary state."""
    values, vectors = np.linalg.eig(transitions.T)
    stationary = np.real(vectors[:, np.argmin(np.abs(values - 1))])
    stationary /= stationary.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        row_entropy = -np.nansum(np.where(transitions > 0, transitions * np.log2(transitions), 0.0), axis=1)
    return float(stationary @ row_entropy)


def markov_text(chars: int, seed: int) -> tuple[str, float]:
    """``chars`` characters of the chain seeded by ``seed``, and its entropy rate (bits per char)."""
    transitions = markov_chain(seed)
    cumulative = np.cumsum(transitions, axis=1)
    draws = np.random.default_rng(seed + 1).random(chars)
    states = np.empty(chars, dtype=np.int64)
    state = 0
    for i, u in enumerate(draws):
        state = min(int(np.searchsorted(cumulative[state], u, side="right")), len(ALPHABET) - 1)
        states[i] = state
    return "".join(np.array(list(ALPHABET))[states]), entropy_rate(transitions)


def markov_corpus(chars: int, seed: int, val_fraction: float) -> tuple[Corpus, float]:
    """A generated corpus split like a one-file corpus (the last ``val_fraction`` validates)."""
    text, rate = markov_text(chars, seed)
    cut = int(len(text) * (1 - val_fraction))
    digest = hashlib.sha256(f"markov:{chars}:{seed}".encode() + text.encode()).hexdigest()
    return Corpus(train=text[:cut], val=text[cut:], sources=[f"generated Markov text (seed {seed})"],
                  sha256=digest), rate
