"""Calibration metrics, temperature scaling and decision thresholds: pure functions of arrays (no I/O).

The pieces, in the order a run uses them (issue 18):

1. :func:`calibration_metrics` scores probabilities against gold labels: expected calibration error (ECE, top-label,
   equal-width bins), Brier score and negative log-likelihood.
2. :func:`fit_temperature` fits one temperature ``T`` on the validation logits by NLL; :func:`apply_temperature`
   divides logits by it. ``T > 0`` keeps the order of every row's logits, so the argmax never changes.
3. :func:`tune_threshold` picks, for a binary task, the probability of one class above which that class is
   predicted; :func:`apply_threshold` turns probabilities into label ids with it.
4. :class:`Calibration` holds both (what ``model/calibration.json`` stores) and turns logits into probabilities and
   label ids the same way in every predictor.

This is the single-label (softmax) calibration that :mod:`distiltune.tasks.single_label` applies: top-label
reliability, one temperature, a threshold on one of two labels. It imports numpy, scipy, :mod:`distiltune.errors` and
the shared numerics of :mod:`distiltune.tasks.metrics` (the one softmax and NLL). Inputs may be numpy arrays or
CPU/GPU torch tensors (converted, never imported). The file a run saves the fit in is ``runs.CALIBRATION_FILE``
(``model/calibration.json``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.stats import chi2

from distiltune.errors import ConfigError, DataError, RunError
from distiltune.tasks.metrics import negative_log_likelihood, softmax

logger = logging.getLogger("distiltune")

ECE_BINS = 15
"""Equal-width confidence bins of the reported ECE (Guo et al. 2017 use 15)."""
TEMPERATURE_BOUNDS = (0.05, 20.0)
"""The fitted temperature stays inside these bounds: positive, and far enough from 0 and infinity that a degenerate
validation split (every example right, or every example wrong) cannot make the probabilities one-hot or flat."""
TEMPERATURE_XATOL = 1e-7
"""How close to the NLL-optimal ``log T`` the search stops (absolute, in log T: 1e-7 relative in T)."""
TEMPERATURE_SIGNIFICANCE = 0.05
"""``T`` stays 1 unless a likelihood-ratio test on the validation split rejects ``T = 1`` at this level."""
ThresholdMetric = Literal["f1", "f1_macro", "balanced_accuracy", "accuracy"]
THRESHOLD_METRICS: tuple[str, ...] = ("f1", "f1_macro", "balanced_accuracy", "accuracy")
"""What :func:`tune_threshold` maximises; ``f1`` is the F1 of the thresholded class (the minority class in a run)."""


# --- metrics -----------------------------------------------------------------------------------------------


def reliability_bins(probabilities: Any, labels: Any, bins: int = ECE_BINS) -> dict[str, list[float] | list[int]]:
    """Top-label reliability statistics in ``bins`` equal-width confidence bins over [0, 1].

    A row's confidence is its highest probability and it counts as correct when that class is the gold label.
    Bins are closed on the left, ``[k/bins, (k+1)/bins)``, and the last also on the right, so a confidence of
    exactly 1.0 (common in float32 softmax) lands in the last bin: ``numpy.histogram``'s rule. torchmetrics 1.9
    bins the same way except that it gives 1.0 a bin of its own (Lightning-AI/torchmetrics#3510).

    Returns ``edges`` (bins + 1 floats) and per bin ``count``, mean ``confidence`` and ``accuracy`` (0.0 for an
    empty bin, whose count is 0).
    """
    probabilities, labels = _checked(probabilities, labels)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    safe = np.maximum(count, 1)
    return {
        "edges": edges.tolist(),
        "count": count.tolist(),
        "confidence": (np.bincount(index, weights=confidence, minlength=bins) / safe).tolist(),
        "accuracy": (np.bincount(index, weights=correct, minlength=bins) / safe).tolist(),
    }


def expected_calibration_error(probabilities: Any, labels: Any, bins: int = ECE_BINS) -> float:
    """Top-label ECE: the count-weighted mean over bins of |accuracy - mean confidence| (a fraction, not %)."""
    table = reliability_bins(probabilities, labels, bins)
    count = np.asarray(table["count"], dtype=np.float64)
    gap = np.abs(np.asarray(table["accuracy"]) - np.asarray(table["confidence"]))
    return float((gap * count).sum() / count.sum())


def brier_score(probabilities: Any, labels: Any) -> float:
    """Mean squared distance between the probabilities and the one-hot gold label, as scikit-learn's
    ``brier_score_loss`` defines it by default (``scale_by_half="auto"``): for two classes the usual binary Brier
    score, ``mean((p_1 - y_1)^2)`` in [0, 1]; for three or more, Brier's (1950) original sum over classes,
    ``mean(sum_c (p_c - y_c)^2)`` in [0, 2]."""
    probabilities, labels = _checked(probabilities, labels)
    one_hot = np.zeros_like(probabilities)
    one_hot[np.arange(len(labels)), labels] = 1.0
    per_row = ((probabilities - one_hot) ** 2).sum(axis=1)
    scale = 0.5 if probabilities.shape[1] == 2 else 1.0
    return float(scale * per_row.mean())


def calibration_metrics(probabilities: Any, labels: Any, bins: int = ECE_BINS) -> dict[str, float]:
    """``{"ece", "brier", "nll"}`` of predicted probabilities ``[n, classes]`` against gold label ids ``[n]``.

    ECE is top-label with ``bins`` equal-width bins (:func:`reliability_bins`), Brier as in :func:`brier_score`,
    NLL in nats. All three are lower-is-better; ECE and Brier are fractions, not percentages.
    """
    return {
        "ece": expected_calibration_error(probabilities, labels, bins),
        "brier": brier_score(probabilities, labels),
        # float64, as every calibration metric: the tails that NLL weighs survive the conversion of float32 inputs.
        "nll": negative_log_likelihood(*_checked(probabilities, labels)),
    }


def calibration_report(probabilities: Any, labels: Any, bins: int = ECE_BINS) -> dict[str, Any]:
    """What every evaluation in metrics.json carries under ``calibration``: the bin count, ECE, Brier, NLL and the
    reliability table (:func:`reliability_bins`) that the reliability diagram is drawn from."""
    return {
        "bins": bins,
        **calibration_metrics(probabilities, labels, bins),
        "reliability": reliability_bins(probabilities, labels, bins),
    }


# --- temperature scaling -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemperatureFit:
    """The outcome of :func:`fit_temperature_details`: what metrics.json reports about the fit."""

    temperature: float
    """The temperature to apply (1.0 when the fit was rejected)."""
    nll_before: float
    """Validation NLL at T = 1 (nats per example)."""
    nll_after: float
    """Validation NLL at ``temperature``."""
    optimum: float
    """The NLL-optimal temperature inside the bounds, even when the fit was rejected."""
    accepted: bool
    """Whether the optimum improved the validation NLL enough (likelihood-ratio test) to replace T = 1."""
    at_bound: bool
    """Whether the optimum lies on a bound (a sign of a degenerate validation split)."""
    rows: int
    """Validation rows the temperature was fitted on."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "nll_before": self.nll_before,
            "nll_after": self.nll_after,
            "optimum": self.optimum,
            "accepted": self.accepted,
            "at_bound": self.at_bound,
            "rows": self.rows,
        }


def fit_temperature(
    logits: Any,
    labels: Any,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
    significance: float = TEMPERATURE_SIGNIFICANCE,
) -> float:
    """The temperature ``T`` that minimises the NLL of ``softmax(logits / T)`` on (validation) ``labels``.

    See :func:`fit_temperature_details` for the method and the guards. ``logits`` must come from the model in eval
    mode (dropout off), as :func:`distiltune.inference.batched.predict_logits` produces them.
    """
    return fit_temperature_details(logits, labels, bounds, significance).temperature


def fit_temperature_details(
    logits: Any,
    labels: Any,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
    significance: float = TEMPERATURE_SIGNIFICANCE,
) -> TemperatureFit:
    """Fit one temperature by NLL, with the guards issue 18 asks for.

    * **Method.** scipy's bounded scalar minimiser (``minimize_scalar(method="bounded")``: Brent's method, golden
      sections with parabolic steps) over ``log T`` in ``log(bounds)``, in float64, run to a fixed tolerance
      (``xatol`` 1e-7 in log T) rather than to an iteration budget. The NLL is convex in ``1/T`` (log-sum-exp of a
      linear function, minus a linear function), so it is unimodal in ``log T`` and a bracketing search finds the
      global optimum inside the bounds. LBFGS on ``T`` itself (the reference implementation of Guo et al. 2017)
      needs a learning rate and an iteration cap, can step to a negative ``T``, and stops where its budget ends; none
      of that applies to a bracketing search on one variable. The NLL is the exact one of the scaled logits
      (``negative_log_likelihood(from_logits=True)``: log-softmax, no probability floor).
    * **Positive and bounded.** ``T`` is searched as ``exp(u)`` with ``u`` between the logs of ``bounds``; an
      optimum on a bound is logged as a warning (a validation split with every example right drives ``T`` to 0).
    * **1 unless NLL improves.** The optimum replaces ``T = 1`` only when it lowers the *total* validation NLL by
      more than ``chi2_1(1 - significance) / 2`` nats (1.92 at 5%): a likelihood-ratio test of ``T = 1``, so a
      model that is already calibrated keeps exactly 1 instead of a temperature fitted to noise.
    """
    z = _as_float64(logits)
    y = _labels(labels, z)
    low, high = bounds
    if not 0 < low <= 1 <= high or not math.isfinite(high):
        raise ValueError(f"temperature bounds must satisfy 0 < low <= 1 <= high < inf, got {bounds}")
    if not 0 < significance < 1:
        raise ValueError(f"significance must be in (0, 1), got {significance}")

    def nll(log_temperature: float) -> float:
        return negative_log_likelihood(z / math.exp(log_temperature), y, from_logits=True)

    u_low, u_high = math.log(low), math.log(high)
    search = minimize_scalar(nll, bounds=(u_low, u_high), method="bounded", options={"xatol": TEMPERATURE_XATOL})
    # The search never evaluates the bounds themselves; an optimum at a bound would stop a hair inside it.
    u_best = min((u_low, float(search.x), u_high), key=nll)
    optimum = low if u_best == u_low else high if u_best == u_high else math.exp(u_best)
    nll_before, nll_optimum = nll(0.0), nll(u_best)
    accepted = len(y) * (nll_before - nll_optimum) > likelihood_ratio_critical_value(significance) / 2
    at_bound = math.isclose(u_best, u_low, abs_tol=1e-6) or math.isclose(u_best, u_high, abs_tol=1e-6)
    if at_bound:
        logger.warning(
            "The NLL-optimal temperature %.3g lies on its bound %s: the validation split (%d rows) cannot place it "
            "(e.g. every prediction correct). Use a larger validation split.",
            optimum,
            bounds,
            len(y),
        )
    temperature = optimum if accepted else 1.0
    return TemperatureFit(
        temperature=temperature,
        nll_before=nll_before,
        nll_after=nll_optimum if accepted else nll_before,
        optimum=optimum,
        accepted=bool(accepted),
        at_bound=at_bound,
        rows=len(y),
    )


def likelihood_ratio_critical_value(significance: float = TEMPERATURE_SIGNIFICANCE) -> float:
    """The value twice the total log-likelihood gain of the fitted temperature must pass to replace ``T = 1``: under
    ``T = 1`` that statistic is chi-squared with one degree of freedom, so this is its ``1 - significance`` quantile
    (3.84 at 5%)."""
    return float(chi2.ppf(1 - significance, df=1))


def apply_temperature(logits: Any, temperature: float) -> Any:
    """``logits / temperature`` for a numpy array or a torch tensor (same type back). ``temperature`` must be > 0,
    which keeps every row's order of classes and so its argmax."""
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    if temperature == 1.0:
        return logits
    return logits / temperature


# --- decision thresholds -----------------------------------------------------------------------------------


def tune_threshold(probabilities: Any, labels: Any, positive_id: int, metric: ThresholdMetric | str = "f1") -> float:
    """The probability threshold on class ``positive_id`` that maximises ``metric`` on (validation) ``labels``.

    Binary tasks only. A row is predicted ``positive_id`` when its probability of that class is ``>=`` the
    threshold, else the other class. Every distinct cut of the validation scores is tried; the threshold returned
    is the midpoint between the last score predicted positive and the next lower one, so it does not sit on a
    validation example. Among equally good cuts the one closest to 0.5 (the argmax rule) wins.

    ``metric``: ``f1`` (F1 of class ``positive_id``), ``f1_macro``, ``balanced_accuracy`` or ``accuracy``.
    """
    probabilities, labels = _checked(probabilities, labels)
    require_binary(probabilities.shape[1])
    if metric not in THRESHOLD_METRICS:
        raise ConfigError(
            f"train.threshold_metric '{metric}' is not available.", f"Choose one of: {', '.join(THRESHOLD_METRICS)}."
        )
    if positive_id not in (0, 1):
        raise ValueError(f"positive_id must be 0 or 1, got {positive_id}")
    is_positive = labels == positive_id
    positives, negatives = int(is_positive.sum()), int((~is_positive).sum())
    if positives == 0 or negatives == 0:
        raise DataError(
            f"Cannot tune a decision threshold: the validation split has {positives} rows of the thresholded class "
            f"and {negatives} of the other.",
            "Use a validation split that holds both labels (a larger data.validation_fraction).",
        )
    scores = probabilities[:, positive_id]
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    # Cut k predicts the k highest-scoring distinct values positive; cut 0 predicts nothing positive.
    distinct_ends = np.flatnonzero(np.diff(sorted_scores, append=-np.inf) != 0)
    tp = np.concatenate([[0], np.cumsum(is_positive[order])[distinct_ends]]).astype(np.float64)
    fp = np.concatenate([[0], np.cumsum(~is_positive[order])[distinct_ends]]).astype(np.float64)
    fn, tn = positives - tp, negatives - fp
    quality = _threshold_quality(metric, tp, fp, fn, tn)
    # Cut k > 0 predicts positive down to the k-th highest distinct score: its threshold is the midpoint between
    # that score and the next lower one (0 below the lowest), or the score itself where the two are adjacent floats.
    cut_scores = sorted_scores[distinct_ends]
    below = np.concatenate([cut_scores[1:], [0.0]])
    midpoints = (cut_scores + below) / 2
    thresholds = np.concatenate([[(cut_scores[0] + 1.0) / 2], np.where(midpoints > below, midpoints, cut_scores)])
    if thresholds[0] <= cut_scores[0]:  # "nothing positive" above a score of 1.0 would not be a probability
        quality[0] = -np.inf
    best = np.flatnonzero(quality >= quality.max() - 1e-12)
    chosen = best[np.argmin(np.abs(thresholds[best] - 0.5))]
    return float(thresholds[chosen])


def apply_threshold(probabilities: Any, threshold: float, positive_id: int) -> np.ndarray:
    """Label ids: ``positive_id`` where its probability is ``>= threshold``, else the other class (binary only)."""
    probabilities = _as_float64(probabilities)
    require_binary(probabilities.shape[1])
    if positive_id not in (0, 1):
        raise ValueError(f"positive_id must be 0 or 1, got {positive_id}")
    return np.where(probabilities[:, positive_id] >= threshold, positive_id, 1 - positive_id).astype(np.int64)


def require_binary(num_labels: int, key: str = "train.tune_threshold") -> None:
    """Raise the one-line ConfigError for a decision threshold on a task without exactly two labels (call it before
    training, so the mistake costs nothing)."""
    if num_labels != 2:
        raise ConfigError(
            f"{key} needs a task with two labels; this one has {num_labels}.",
            f"Drop {key}, or use train.class_weights / train.loss=focal for imbalanced multi-class data.",
        )


# --- what a predictor applies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """The post-processing a run saved (``model/calibration.json``): a temperature, and for binary tasks an
    optional threshold on one class's probability. The default is the identity: ``T = 1`` and argmax."""

    temperature: float = 1.0
    threshold: float | None = None
    """Predict ``threshold_label_id`` when its (temperature-scaled) probability is >= this; None: argmax."""
    threshold_label_id: int | None = None

    def __post_init__(self) -> None:
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be a positive finite number, got {self.temperature}")
        if (self.threshold is None) != (self.threshold_label_id is None):
            raise ValueError("threshold and threshold_label_id go together")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be a probability, got {self.threshold}")

    @property
    def is_identity(self) -> bool:
        return self.temperature == 1.0 and self.threshold is None

    def probabilities(self, logits: Any) -> np.ndarray:
        """Softmax of ``logits / T`` (float64)."""
        return softmax(apply_temperature(_as_float64(logits), self.temperature))

    def labels(self, probabilities: Any) -> np.ndarray:
        """Label ids from (already temperature-scaled) probabilities: the threshold rule, else argmax."""
        if self.threshold is None or self.threshold_label_id is None:
            return np.asarray(_as_float64(probabilities).argmax(axis=-1), dtype=np.int64)
        return apply_threshold(probabilities, self.threshold, self.threshold_label_id)

    def predict(self, logits: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities, label ids)`` for raw model logits: divide by T, softmax, then threshold or argmax."""
        probabilities = self.probabilities(logits)
        return probabilities, self.labels(probabilities)

    def to_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "threshold": self.threshold,
            "threshold_label_id": self.threshold_label_id,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any], label_names: list[str], source: str = "calibration.json") -> Calibration:
        """Read the saved form (extra keys, such as the fit reports, are ignored); an invalid file raises a
        RunError naming ``source``."""
        try:
            calibration = cls(
                temperature=float(raw.get("temperature", 1.0)),
                threshold=None if raw.get("threshold") is None else float(raw["threshold"]),
                threshold_label_id=None if raw.get("threshold_label_id") is None else int(raw["threshold_label_id"]),
            )
        except (TypeError, ValueError) as err:
            raise RunError(f"{source}: invalid calibration ({err}).", "Train the run again.") from None
        if calibration.threshold is not None and len(label_names) != 2:
            raise RunError(
                f"{source}: a decision threshold needs two labels; the model has {len(label_names)}.",
                "Train the run again.",
            )
        return calibration


# --- helpers -----------------------------------------------------------------------------------------------


def _threshold_quality(metric: str, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> np.ndarray:
    def f1(true_pos: np.ndarray, false_pos: np.ndarray, false_neg: np.ndarray) -> np.ndarray:
        denominator = 2 * true_pos + false_pos + false_neg
        return np.divide(2 * true_pos, denominator, out=np.zeros_like(true_pos), where=denominator > 0)

    if metric == "f1":
        return f1(tp, fp, fn)
    if metric == "f1_macro":
        return (f1(tp, fp, fn) + f1(tn, fn, fp)) / 2
    if metric == "balanced_accuracy":
        return (tp / (tp + fn) + tn / (tn + fp)) / 2
    return (tp + tn) / (tp + fp + fn + tn)


def _as_float64(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, on any device
        values = values.detach().float().cpu().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"expected a [rows, classes] array, got shape {array.shape}")
    # -inf is a logit a model may give a label it never saw (the TF-IDF baseline): its probability is 0.
    if np.isnan(array).any() or np.isposinf(array).any():
        raise ValueError("logits or probabilities contain NaN or +infinity")
    return array


def _labels(labels: Any, scores: np.ndarray) -> np.ndarray:
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != len(scores):
        raise ValueError(f"expected {len(scores)} labels, got shape {y.shape}")
    if len(y) == 0:
        raise ValueError("no rows")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= scores.shape[1]:
        raise ValueError(f"labels must be integer ids in [0, {scores.shape[1]})")
    return y.astype(np.int64)


def _checked(probabilities: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    p = _as_float64(probabilities)
    return p, _labels(labels, p)


__all__ = [
    "ECE_BINS",
    "TEMPERATURE_BOUNDS",
    "THRESHOLD_METRICS",
    "Calibration",
    "TemperatureFit",
    "apply_temperature",
    "apply_threshold",
    "brier_score",
    "calibration_metrics",
    "calibration_report",
    "expected_calibration_error",
    "fit_temperature",
    "fit_temperature_details",
    "likelihood_ratio_critical_value",
    "negative_log_likelihood",
    "reliability_bins",
    "require_binary",
    "tune_threshold",
]
