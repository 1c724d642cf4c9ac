"""Softmax and cross-entropy fused, which is both cheaper and numerically safer than apart."""

from __future__ import annotations

import numpy as np


class SoftmaxCrossEntropy:
    """Mean cross-entropy of integer labels under softmax(logits), and its gradient.

    Computed through log-sum-exp with the row maximum subtracted, so large logits neither overflow
    ``exp`` nor lose the small probabilities; the gradient is (softmax - onehot) / N.
    """

    _probs: np.ndarray | None = None

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """The mean loss over the batch (per-example losses are kept in ``losses``)."""
        if logits.ndim != 2 or labels.shape != (len(logits),):
            raise ValueError(f"expected logits (N, K) and labels (N,), got {logits.shape} and {labels.shape}")
        n, classes = logits.shape
        if n and (labels.min() < 0 or labels.max() >= classes):
            raise ValueError(f"labels must lie in [0, {classes}), got values from {labels.min()} to "
                             f"{labels.max()}")
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        sums = exp.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        self.losses = np.log(sums[:, 0]) - shifted[rows, labels]
        exp /= sums  # now the softmax probabilities
        self._probs, self._labels, self._rows = exp, labels.copy(), rows  # the caller may reuse labels
        return float(self.losses.mean())

    def backward(self) -> np.ndarray:
        """d(mean loss)/d(logits); reuses the probability buffer of the last forward, so once per forward."""
        grad, self._probs = self._probs, None
        if grad is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward needs a forward first (once per forward)")
        grad[self._rows, self._labels] -= 1
        grad /= len(grad)
        return grad
