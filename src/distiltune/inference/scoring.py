"""Score predictions on a labelled frame: metrics (with the log loss, samples/s and calibration) and
``predictions.jsonl`` rows.

It takes a function from texts to logits, so training's in-memory model, a reloaded :class:`Classifier` and a
method's own predictor are scored the same way, and the run's task (:mod:`distiltune.tasks`) turns the logits into
probabilities, decisions, metrics and rows under the calibration the run saved (temperature, decision threshold) the
same way for all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from distiltune.tasks.base import SINGLE_LABEL, Task, get_task

#: ``(texts, pairs or None) -> logits [n, num_labels]`` in input order: a Classifier's, or a model in training.
LogitsFunction = Callable[[Sequence[str], Sequence[str] | None], np.ndarray]


def score_frame(
    predict: LogitsFunction,
    frame: pd.DataFrame,
    label_names: list[str],
    calibration: Any = None,
    task: Task[Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics (with the log loss, samples/s and calibration) and per-example predictions (gold, predicted,
    probabilities) for a labelled frame with ``text[, text_pair], label`` columns (label ids)."""
    texts, pairs = frame_inputs(frame)
    started = time.perf_counter()
    logits = predict(texts, pairs)
    seconds = time.perf_counter() - started
    return score_logits(np.asarray(logits), seconds, frame, label_names, calibration, task)


def score_logits(
    logits: np.ndarray,
    seconds: float,
    frame: pd.DataFrame,
    label_names: list[str],
    calibration: Any = None,
    task: Task[Any] | None = None,
    fitted: Sequence[str] = (),
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """:func:`score_frame` for logits already predicted (in ``seconds``) for ``frame``'s rows, under ``task``
    (default: single-label) and its ``calibration`` (None: the identity); ``fitted`` names the calibration fits
    whose effect the metrics report too (:meth:`~distiltune.tasks.base.Task.score`)."""
    texts, pairs = frame_inputs(frame)
    task = task or get_task(SINGLE_LABEL)
    gold = frame["label"].to_numpy()
    return task.score(np.asarray(logits), gold, label_names, seconds, texts, pairs, calibration, fitted)


def frame_inputs(frame: pd.DataFrame) -> tuple[list[str], list[str] | None]:
    """The texts (and pairs) of a standardized frame."""
    texts = frame["text"].tolist()
    pairs = frame["text_pair"].tolist() if "text_pair" in frame.columns else None
    return texts, pairs


__all__ = ["LogitsFunction", "frame_inputs", "score_frame", "score_logits"]
