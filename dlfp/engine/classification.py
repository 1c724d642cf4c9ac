"""Classification scores from a confusion matrix, shared by the torch and the NumPy classifier tasks.

Both tasks count (true, predicted) pairs per evaluation batch with ``confusion_matrix`` and turn the
totals into the same ``{"loss", "error", "accuracy"}`` record with ``classification_metrics``, so
their metrics.jsonl files and summaries compare key for key.
"""

from __future__ import annotations

from collections.abc import Callable
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


def score_splits(
    evaluate: Callable[[Any], tuple[dict[str, float], np.ndarray]], loaders: dict[str, Any]
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Evaluate every split: flat ``{"<split>/<metric>": value}`` and each split's confusion matrix."""
    scores: dict[str, float] = {}
    confusions: dict[str, np.ndarray] = {}
    for split, loader in loaders.items():
        metrics, confusions[split] = evaluate(loader)
        scores.update({f"{split}/{k}": v for k, v in metrics.items()})
    return scores, confusions
