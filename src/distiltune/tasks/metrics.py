"""The numerics every task shares: the one softmax, the one negative log-likelihood, and the flat part of a metrics
dict. Pure functions of arrays (no I/O); what a metric *means* for a kind of task lives in that task's module
(:mod:`distiltune.tasks.single_label`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.special

PROBABILITY_FLOOR = float(np.finfo(np.float64).eps)
"""The probability a predicted 0 counts as in :func:`negative_log_likelihood` (2.2e-16, so a confident miss costs at
most 36.04 nats instead of infinity). float64's machine epsilon, as scikit-learn's ``log_loss`` uses for float64
probabilities: the same number a user gets from scikit-learn, and the smallest floor that is still a relative step
of a float64 probability (one floor for every dtype, so float32 and float64 runs report comparable losses). It only
matters for a model that gives its gold label less than 2.2e-16: a TF-IDF model gives 0 to a label it never saw in
training, and a float32 softmax rounds a logit gap beyond about 104 to 0."""


def softmax(logits: Any) -> np.ndarray:
    """Softmax over the last axis, in the dtype of ``logits`` (float32 logits stay float32: what every prediction
    without a fitted calibration has returned since the first run; calibrated predictions pass float64).

    ``scipy.special.softmax``: subtract each row's maximum, exponentiate, divide by the row's sum. A logit of -inf
    (a label a TF-IDF model never saw) gets probability 0."""
    return scipy.special.softmax(np.asarray(logits), axis=-1)


def negative_log_likelihood(scores: Any, labels: Any, from_logits: bool = False) -> float:
    """Mean ``-log p(gold label)`` in nats over the rows of ``scores [n, classes]`` and label ids ``labels [n]``; NaN
    for no rows.

    ``scores`` are probabilities, a probability below :data:`PROBABILITY_FLOOR` counting as the floor (probabilities
    round to 0; the floor keeps a confident miss finite). With ``from_logits`` they are logits, and the
    log-probabilities come from ``scipy.special.log_softmax``, exact at any logit gap: no floor, since finite logits
    never give log p = -inf. The temperature fit uses that form, so that its objective keeps growing as a temperature
    near 0 makes a miss ever more confident instead of flattening at the floor.

    Computed in the dtype of ``scores`` (float32 probabilities give the float32 mean every run has reported as its
    ``loss``)."""
    scores = np.asarray(scores)
    gold = np.asarray(labels).astype(np.int64)
    if len(gold) == 0:
        return float("nan")
    if from_logits:
        log_p = scipy.special.log_softmax(scores, axis=-1)[np.arange(len(gold)), gold]
    else:
        log_p = np.log(np.clip(scores[np.arange(len(gold)), gold], PROBABILITY_FLOOR, 1.0))
    return float(-np.mean(log_p))


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The flat numeric part of a metrics dict (what history rows and checkpoint selection use)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


#: ``(row logits, row labels) -> (document logits, document labels)``: how the Trainer's evaluation turns the rows
#: of a split read in windows (``data.long_text=chunks``) back into its documents.
ToDocuments = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


__all__ = ["PROBABILITY_FLOOR", "ToDocuments", "negative_log_likelihood", "scalar_metrics", "softmax"]
