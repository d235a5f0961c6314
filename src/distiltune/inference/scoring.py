"""Score predictions on a labelled frame: metrics (with the log loss, samples/s and calibration) and
``predictions.jsonl`` rows.

It takes a function from texts to logits, so training's in-memory model, a reloaded :class:`Classifier` and a
method's own predictor are scored the same way, and the :class:`~distiltune.tasks.calibration.Calibration` a run saved
(temperature, decision threshold) turns the logits into probabilities and labels the same way for all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from distiltune.tasks.calibration import Calibration, calibration_report
from distiltune.tasks.metrics import log_loss, score_predictions, softmax

#: ``(texts, pairs or None) -> logits [n, num_labels]`` in input order: a Classifier's, or a model in training.
LogitsFunction = Callable[[Sequence[str], Sequence[str] | None], np.ndarray]


def apply_calibration(logits: np.ndarray, calibration: Calibration | None) -> tuple[np.ndarray, np.ndarray]:
    """``(probabilities, label ids)`` of raw logits under a run's calibration.

    Without one (or with the identity) this is the plain softmax and argmax every run used before calibration
    existed, bit for bit; otherwise logits / T, a float64 softmax and the decision threshold (else argmax)."""
    logits = np.asarray(logits)
    if calibration is None or calibration.is_identity:
        probabilities = softmax(logits)
        return probabilities, probabilities.argmax(axis=-1)
    return calibration.predict(logits)


def score_frame(
    predict: LogitsFunction,
    frame: pd.DataFrame,
    label_names: list[str],
    calibration: Calibration | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics (with the log loss, samples/s and calibration) and per-example predictions (gold, predicted,
    probabilities) for a labelled frame with ``text[, text_pair], label`` columns (label ids)."""
    texts, pairs = frame_inputs(frame)
    started = time.perf_counter()
    logits = predict(texts, pairs)
    seconds = time.perf_counter() - started
    return score_logits(np.asarray(logits), seconds, frame, label_names, calibration)


def score_logits(
    logits: np.ndarray,
    seconds: float,
    frame: pd.DataFrame,
    label_names: list[str],
    calibration: Calibration | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """:func:`score_frame` for logits already predicted (in ``seconds``) for ``frame``'s rows."""
    texts, pairs = frame_inputs(frame)
    gold = frame["label"].to_numpy()
    probabilities, predicted = apply_calibration(logits, calibration)
    metrics, rows = score_predictions(texts, pairs, gold, probabilities, label_names, seconds, predicted)
    metrics["loss"] = log_loss(probabilities, gold)
    metrics["calibration"] = calibration_or_none(probabilities, gold)
    return metrics, rows


def calibration_or_none(probabilities: np.ndarray, gold: np.ndarray) -> dict[str, Any] | None:
    """ECE, Brier, NLL and the reliability table of an evaluation (None for no rows or NaN scores: a diverged
    model still gets its other metrics)."""
    if len(gold) == 0 or np.isnan(probabilities).any():
        return None
    return calibration_report(probabilities, np.asarray(gold).astype(np.int64))


def frame_inputs(frame: pd.DataFrame) -> tuple[list[str], list[str] | None]:
    """The texts (and pairs) of a standardized frame."""
    texts = frame["text"].tolist()
    pairs = frame["text_pair"].tolist() if "text_pair" in frame.columns else None
    return texts, pairs


__all__ = ["LogitsFunction", "apply_calibration", "calibration_or_none", "frame_inputs", "score_frame", "score_logits"]
