"""Classification scores from a confusion matrix, shared by the torch and the NumPy classifier tasks.

Both tasks count (true, predicted) pairs per evaluation batch with ``confusion_matrix`` and turn the
totals into the same ``{"loss", "error", "accuracy"}`` record with ``classification_metrics``, so
their metrics.jsonl files and summaries compare key for key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes), int64, true class on rows and predicted class on columns."""
    pairs = np.asarray(labels, dtype=np.int64) * num_classes + np.asarray(predictions, dtype=np.int64)
    return np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def classification_metrics(loss_sum: float, confusion: np.ndarray) -> dict[str, float]:
    """Mean loss, error and accuracy over the examples the confusion matrix counts."""
    n = int(confusion.sum())
    if n == 0:
        raise ValueError("no examples were evaluated")
    accuracy = float(np.trace(confusion)) / n
    return {"loss": loss_sum / n, "error": 1.0 - accuracy, "accuracy": accuracy}


class SplitScores:
    """Scores splits, remembering each model's latest scores, so that a task's final scoring reuses
    the driver's last evaluation instead of repeating it: ``fit`` evaluates after the last update,
    at the weights it returns with. The splits not evaluated then are scored once, at the end."""

    def __init__(self, evaluate: Callable[[Any, Any], tuple[dict[str, float], np.ndarray]],
                 loaders: dict[str, Any]) -> None:
        self._evaluate, self.loaders = evaluate, loaders
        self._latest: dict[int, dict[str, tuple[dict[str, float], np.ndarray]]] = {}

    def during(self, model: Any, splits: Sequence[str]) -> dict[str, dict[str, float]]:
        """``{split: metrics}`` of ``splits``, remembered as ``model``'s latest scores."""
        scored = {split: self._evaluate(model, self.loaders[split]) for split in splits}
        self._latest[id(model)] = scored
        return {split: metrics for split, (metrics, _) in scored.items()}

    def final(self, model: Any) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Every split: flat ``{"<split>/<metric>": value}`` and each split's confusion matrix. The
        splits of ``model``'s latest ``during`` are reused: call it only at the weights they saw."""
        latest = self._latest.get(id(model), {})
        scores: dict[str, float] = {}
        confusions: dict[str, np.ndarray] = {}
        for split, loader in self.loaders.items():
            metrics, confusions[split] = latest[split] if split in latest else self._evaluate(model, loader)
            scores.update({f"{split}/{k}": v for k, v in metrics.items()})
        return scores, confusions
