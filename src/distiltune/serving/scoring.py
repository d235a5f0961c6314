"""Score predictions on a labelled frame: metrics (with the log loss and samples/s) and ``predictions.jsonl`` rows.

It takes a function from texts to logits, so training's in-memory model, a reloaded :class:`Classifier` and a
method's own predictor are scored the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from distiltune.metrics import log_loss, score_predictions, softmax

#: ``(texts, pairs or None) -> logits [n, num_labels]`` in input order: a Classifier's, or a model in training.
LogitsFunction = Callable[[Sequence[str], Sequence[str] | None], np.ndarray]


def score_frame(
    predict: LogitsFunction, frame: pd.DataFrame, label_names: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics (with the log loss and samples/s) and per-example predictions (gold, predicted, probabilities) for a
    labelled frame with ``text[, text_pair], label`` columns (label ids)."""
    texts = frame["text"].tolist()
    pairs = frame["text_pair"].tolist() if "text_pair" in frame.columns else None
    started = time.perf_counter()
    logits = predict(texts, pairs)
    seconds = time.perf_counter() - started
    probabilities = softmax(np.asarray(logits))
    gold = frame["label"].to_numpy()
    metrics, rows = score_predictions(texts, pairs, gold, probabilities, label_names, seconds)
    metrics["loss"] = log_loss(probabilities, gold)
    return metrics, rows


__all__ = ["LogitsFunction", "score_frame"]
