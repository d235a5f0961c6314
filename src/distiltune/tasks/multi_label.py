"""Multi-label classification: every text (or text pair) carries a set of labels, possibly empty. Each label gets its
own sigmoid score and its own decision (the score against a threshold, 0.5 unless the run tuned one per label).

The second implementation of :class:`~distiltune.tasks.base.Task`. Gold labels arrive as the data layer gives them:
one list of label ids per row (:mod:`distiltune.data.multilabel`), or multi-hot rows (the Trainer's ``label_ids``);
decisions are boolean ``[rows, labels]`` matrices.

* **Loss**: binary cross-entropy with logits per (row, label), with a per-label ``pos_weight`` from
  ``train.class_weights`` (``balanced``: a label's negative rows over its positive rows), or its focal variant
  (each cell's term times ``(1 - p_t) ** gamma``). Averaged over cells, as ``BCEWithLogitsLoss`` does.
* **Metrics**: micro, macro and weighted P/R/F1 (scikit-learn's definitions), subset accuracy (every label of a row
  right), Hamming loss, label-ranking average precision, and a per-label table.
* **Calibration error**: every (row, label) cell is one binary prediction, whose confidence is ``max(p, 1 - p)``;
  ECE over those cells in 15 equal-width bins, Brier as the mean squared error of the cells, NLL as their mean
  binary cross-entropy (``distiltune.tasks.calibration.calibration_report`` on ``[1 - p, p]`` per cell).
* **Temperature**: one temperature for all labels, fitted by the cells' NLL (the single-label fit on ``[0, z]``
  logits per cell, whose softmax is ``[1 - sigmoid(z), sigmoid(z)]``). At the 0.5 threshold it changes no decision.
* **Thresholds** (``train.tune_threshold``): one per label, each maximising that label's ``threshold_metric`` (F1 by
  default) on the validation split, tuned on the temperature-scaled scores as they are applied. A label with fewer
  than :data:`MIN_TUNING_POSITIVES` positive validation rows, or none negative, keeps 0.5: a cut fitted to a
  handful of rows is noise.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy.special import expit
from sklearn.metrics import (
    accuracy_score,
    hamming_loss,
    label_ranking_average_precision_score,
    precision_recall_fscore_support,
)

from distiltune.errors import ConfigError, RunError
from distiltune.tasks.base import MULTI_LABEL, Task, evaluation_arrays, register_task
from distiltune.tasks.calibration import (
    TEMPERATURE_BOUNDS,
    THRESHOLD_METRICS,
    calibration_report,
    fit_temperature_details,
    tune_threshold,
)
from distiltune.tasks.metrics import ToDocuments, scalar_metrics
from distiltune.tasks.single_label import IGNORE_INDEX, check_loss

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("distiltune")

DEFAULT_THRESHOLD = 0.5
"""The decision threshold of every label unless the run tuned its own."""
MIN_TUNING_POSITIVES = 5
"""A label's threshold is tuned only when the validation split has at least this many rows with the label (and one
without); rarer labels keep :data:`DEFAULT_THRESHOLD`."""

#: Metrics that can pick the best checkpoint; higher is better for all but ``loss``.
SELECTABLE_METRICS = (
    "f1_macro",
    "f1_micro",
    "f1_weighted",
    "f1_samples",
    "precision_macro",
    "recall_macro",
    "precision_micro",
    "recall_micro",
    "subset_accuracy",
    "lrap",
    "loss",
)
#: What the CLI's table shows per split.
HEADLINE_METRICS = (
    "f1_macro",
    "f1_micro",
    "f1_weighted",
    "precision_macro",
    "recall_macro",
    "precision_micro",
    "recall_micro",
    "subset_accuracy",
    "hamming_loss",
    "lrap",
    "samples",
)


# --- gold labels and metrics ---------------------------------------------------------------------------------


def as_multi_hot(labels: Any, num_labels: int) -> np.ndarray:
    """Gold labels as a ``[rows, num_labels]`` 0/1 matrix: from a float or boolean multi-hot matrix (the Trainer's
    ``label_ids``), or from one list of label ids per row (a standardized frame's ``label`` column)."""
    if isinstance(labels, np.ndarray) and labels.ndim == 2 and labels.dtype.kind in "fb":
        return (labels > 0.5).astype(np.int64)
    target = np.zeros((len(labels), num_labels), dtype=np.int64)
    for row, ids in enumerate(labels):
        target[row, [int(i) for i in ids]] = 1
    return target


def multi_label_metrics(
    gold: np.ndarray, predicted: np.ndarray, scores: np.ndarray, label_names: list[str]
) -> dict[str, Any]:
    """Micro/macro/weighted/samples P/R/F1, subset accuracy, Hamming loss, label-ranking average precision and the
    per-label table, from 0/1 gold and predicted ``[rows, labels]`` matrices and the scores that rank the labels."""
    gold = np.asarray(gold).astype(np.int64)
    predicted = np.asarray(predicted).astype(np.int64)
    out: dict[str, Any] = {"samples": int(len(gold))}
    for average in ("micro", "macro", "weighted", "samples"):
        p, r, f, _ = precision_recall_fscore_support(gold, predicted, average=average, zero_division=0)
        out[f"precision_{average}"], out[f"recall_{average}"], out[f"f1_{average}"] = float(p), float(r), float(f)
    out["subset_accuracy"] = float(accuracy_score(gold, predicted)) if len(gold) else 0.0
    out["hamming_loss"] = float(hamming_loss(gold, predicted)) if len(gold) else 0.0
    out["lrap"] = float(label_ranking_average_precision_score(gold, scores)) if len(gold) else 0.0
    out["labels_per_row"] = float(predicted.sum(axis=1).mean()) if len(gold) else 0.0
    p, r, f, support = precision_recall_fscore_support(gold, predicted, average=None, zero_division=0)
    out["per_label"] = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
        for i, name in enumerate(label_names)
    }
    return out


def cell_calibration(probabilities: np.ndarray, gold: np.ndarray) -> dict[str, Any] | None:
    """ECE, Brier, NLL and the reliability table over every (row, label) cell as a binary prediction (None for no
    rows or NaN scores)."""
    if len(gold) == 0 or np.isnan(probabilities).any():
        return None
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    report = calibration_report(np.stack([1.0 - p, p], axis=1), np.asarray(gold).reshape(-1).astype(np.int64))
    return {"kind": "label cells", **report}


def cell_nll(probabilities: np.ndarray, gold: np.ndarray) -> float:
    """Mean binary cross-entropy over the cells; a probability of 0 counts as float64 epsilon (the single-label NLL's
    floor)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), np.finfo(np.float64).eps, 1 - np.finfo(np.float64).eps)
    y = np.asarray(gold, dtype=np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log1p(-p)).mean()) if y.size else float("nan")


# --- loss ----------------------------------------------------------------------------------------------------


def multi_label_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: Sequence[float] | torch.Tensor | None = None,
    kind: str = "cross_entropy",
    gamma: float = 2.0,
    reduction: Literal["mean", "sum", "none"] = "mean",
) -> torch.Tensor:
    """Binary cross-entropy with logits per (row, label) cell, in float32, ``weights`` as each label's
    ``pos_weight``; ``kind="focal"`` multiplies each cell's term by ``(1 - p_t) ** gamma``. Cells labelled -100
    count for nothing. ``mean`` divides the sum by the counted cells (``BCEWithLogitsLoss``'s mean, and what the
    Trainer's ``num_items_in_batch`` counts for multi-hot labels)."""
    import torch  # the task's other parts run without torch
    import torch.nn.functional as F

    check_loss(kind, gamma)
    logits = logits.float()
    labels = labels.to(logits.device).float().view_as(logits)
    counted = labels != IGNORE_INDEX
    targets = torch.where(counted, labels, torch.zeros_like(labels))
    pos_weight = None
    if weights is not None:
        pos_weight = torch.as_tensor(weights, dtype=logits.dtype, device=logits.device)
        if pos_weight.shape != (logits.shape[1],):
            raise ValueError(f"expected {logits.shape[1]} label weights, got shape {tuple(pos_weight.shape)}")
    cells = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight, reduction="none")
    if kind == "focal" and gamma != 0:
        p = torch.sigmoid(logits)
        p_true = p * targets + (1 - p) * (1 - targets)
        cells = cells * (1 - p_true).clamp(min=1e-12).pow(gamma)
    cells = torch.where(counted, cells, torch.zeros_like(cells))
    if reduction == "none":
        return cells
    total = cells.sum()
    return total if reduction == "sum" else total / counted.sum().clamp(min=1)


# --- calibration ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MultiLabelCalibration:
    """What a multi-label run saved in ``model/calibration.json``: one temperature for every label's logit, and a
    decision threshold per label (None: 0.5 for all). The default is the identity."""

    temperature: float = 1.0
    thresholds: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be a positive finite number, got {self.temperature}")
        if self.thresholds is not None and not all(0.0 <= t <= 1.0 for t in self.thresholds):
            raise ValueError(f"thresholds must be probabilities, got {self.thresholds}")

    @property
    def is_identity(self) -> bool:
        return self.temperature == 1.0 and self.thresholds is None

    def threshold_vector(self, num_labels: int) -> np.ndarray:
        if self.thresholds is None:
            return np.full(num_labels, DEFAULT_THRESHOLD)
        if len(self.thresholds) != num_labels:
            raise ValueError(f"{len(self.thresholds)} thresholds for {num_labels} labels")
        return np.asarray(self.thresholds, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "thresholds": None if self.thresholds is None else list(self.thresholds),
        }


def sigmoid(logits: Any, temperature: float = 1.0) -> np.ndarray:
    """Each label's probability: ``sigmoid(logits / T)``; at T = 1 in the logits' dtype, else float64."""
    values = logits.detach().float().cpu().numpy() if hasattr(logits, "detach") else np.asarray(logits)
    if temperature == 1.0:
        return expit(values)
    return expit(values.astype(np.float64) / temperature)


# --- the task ------------------------------------------------------------------------------------------------


class MultiLabelTask(Task[MultiLabelCalibration]):
    """Any number of labels per input: a sigmoid per label, each label decided against its threshold."""

    name = MULTI_LABEL
    problem_type = "multi_label_classification"
    selectable_metrics = SELECTABLE_METRICS
    default_metric = "f1_macro"
    headline_metrics = HEADLINE_METRICS
    progress_metrics = ("f1_micro", "f1_macro")

    def check_metric(self, metric: str, num_labels: int) -> None:
        if metric not in SELECTABLE_METRICS:
            raise ConfigError(
                f"train.metric '{metric}' is not available for a multi-label run.",
                f"Choose one of: {', '.join(SELECTABLE_METRICS)}.",
            )

    def check_calibration_settings(self, num_labels: int, tune_threshold: bool) -> None:
        """Per-label thresholds work for any number of labels: nothing to refuse."""

    def check_loss(self, kind: str, gamma: float) -> None:
        check_loss(kind, gamma)

    def loss(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        weights: Sequence[float] | torch.Tensor | None = None,
        kind: str = "cross_entropy",
        gamma: float = 2.0,
        reduction: Literal["mean", "sum", "none"] = "mean",
    ) -> torch.Tensor:
        return multi_label_loss(logits, labels, weights, kind, gamma, reduction)

    def label_counts(self, labels: Any, num_labels: int) -> list[int]:
        """Rows carrying each label."""
        return as_multi_hot(labels, num_labels).sum(axis=0).astype(int).tolist()

    def balanced_weights(self, labels: Any, num_labels: int) -> list[float]:
        """Each label's ``pos_weight``: its negative rows over its positive rows (``BCEWithLogitsLoss``'s
        convention), so a label's positives weigh as much as its negatives."""
        counts = self.label_counts(labels, num_labels)
        rows = len(list(labels))
        return [(rows - count) / count for count in counts]

    def compute_metrics(
        self, label_names: list[str], to_documents: ToDocuments | None = None
    ) -> Callable[[Any], dict[str, float]]:
        """Scalar metrics at the 0.5 threshold (a logit above 0), of the Trainer's multi-hot ``label_ids``."""

        def compute(eval_prediction: Any) -> dict[str, float]:
            logits, labels = evaluation_arrays(eval_prediction, to_documents)
            logits = np.asarray(logits, dtype=np.float64)
            gold = as_multi_hot(np.asarray(labels), len(label_names))
            metrics = multi_label_metrics(gold, logits > 0, logits, label_names)
            return {k: v for k, v in scalar_metrics(metrics).items() if k != "samples"}

        return compute

    # --- logits -> probabilities -> decisions ---------------------------------------------------------------

    def identity_calibration(self) -> MultiLabelCalibration:
        return MultiLabelCalibration()

    def read_calibration(self, raw: dict[str, Any], label_names: list[str], source: str) -> MultiLabelCalibration:
        try:
            thresholds = raw.get("thresholds")
            calibration = MultiLabelCalibration(
                temperature=float(raw.get("temperature", 1.0)),
                thresholds=None if thresholds is None else tuple(float(t) for t in thresholds),
            )
            calibration.threshold_vector(len(label_names))
        except (TypeError, ValueError) as err:
            raise RunError(f"{source}: invalid calibration ({err}).", "Train the run again.") from None
        return calibration

    def probabilities(self, logits: Any, calibration: MultiLabelCalibration | None = None) -> np.ndarray:
        return sigmoid(logits, 1.0 if calibration is None else calibration.temperature)

    def decide(self, probabilities: Any, calibration: MultiLabelCalibration | None = None) -> np.ndarray:
        """``[rows, labels]`` booleans: each label's probability against its threshold (``>=``)."""
        scores = np.asarray(probabilities)
        calibration = calibration or MultiLabelCalibration()
        return scores >= calibration.threshold_vector(scores.shape[-1])

    def agreement(self, decisions: np.ndarray, other: np.ndarray) -> np.ndarray:
        """A row agrees when every one of its labels is decided the same way."""
        left, right = np.asarray(decisions), np.asarray(other)
        if left.shape != right.shape:
            right = as_multi_hot(right, left.shape[1]).astype(bool) if left.ndim == 2 else right
        return (left.astype(bool) == right.astype(bool)).all(axis=1)

    def gold(self, labels: Any, num_labels: int) -> np.ndarray:
        """Gold labels as booleans ``[rows, labels]`` (from lists of ids)."""
        return as_multi_hot(labels, num_labels).astype(bool)

    def nll(self, probabilities: np.ndarray, labels: Any, num_labels: int) -> float:
        """The cells' mean binary cross-entropy."""
        return cell_nll(probabilities, as_multi_hot(labels, num_labels))

    # --- evaluation ---------------------------------------------------------------------------------------------

    def fit_calibration(
        self,
        validation_logits: np.ndarray,
        validation_labels: np.ndarray,
        train_labels: np.ndarray,
        label_names: list[str],
        temperature: bool,
        threshold_metric: str | None,
    ) -> tuple[MultiLabelCalibration, dict[str, Any]]:
        """The temperature first (by the cells' NLL), then each label's threshold on the scaled probabilities."""
        logits = np.asarray(validation_logits, dtype=np.float64)
        gold = as_multi_hot(validation_labels, len(label_names))
        calibration = MultiLabelCalibration()
        fits: dict[str, Any] = {}
        if temperature:
            cells = logits.reshape(-1)
            fit = fit_temperature_details(np.stack([np.zeros_like(cells), cells], axis=1), gold.reshape(-1))
            calibration = MultiLabelCalibration(temperature=fit.temperature)
            report = fit.to_dict()
            fits["temperature"] = {
                "value": report.pop("temperature"),
                **report,
                "bounds": list(TEMPERATURE_BOUNDS),
                "split": "validation",
                "per": "label cell",
            }
            logger.info(
                "Temperature %.4f fitted on %d validation label cells (NLL %.4f -> %.4f%s).",
                fit.temperature,
                fit.rows,
                fit.nll_before,
                fit.nll_after,
                "" if fit.accepted else f"; the optimum {fit.optimum:.4f} did not improve it enough, so T stays 1",
            )
        if threshold_metric is not None:
            if threshold_metric not in THRESHOLD_METRICS:
                raise ConfigError(
                    f"train.threshold_metric '{threshold_metric}' is not available.",
                    f"Choose one of: {', '.join(THRESHOLD_METRICS)}.",
                )
            probabilities = self.probabilities(logits, calibration)
            thresholds, tuned, kept = [], {}, []
            for index, name in enumerate(label_names):
                column = gold[:, index]
                positives = int(column.sum())
                if positives < MIN_TUNING_POSITIVES or positives == len(column):
                    thresholds.append(DEFAULT_THRESHOLD)
                    kept.append(name)
                    continue
                scores = probabilities[:, index]
                cut = tune_threshold(np.stack([1 - scores, scores], axis=1), column, 1, threshold_metric)
                thresholds.append(cut)
                tuned[name] = cut
            calibration = dataclasses.replace(calibration, thresholds=tuple(thresholds))
            default_decisions = probabilities >= DEFAULT_THRESHOLD
            tuned_decisions = self.decide(probabilities, calibration)
            fits["threshold"] = {
                "values": {name: float(t) for name, t in zip(label_names, thresholds, strict=True)},
                "metric": threshold_metric,
                "tuned_labels": len(tuned),
                "kept_default": kept,
                "min_positives": MIN_TUNING_POSITIVES,
                "validation_f1_macro": _f1_macro(gold, tuned_decisions),
                "validation_f1_macro_at_default": _f1_macro(gold, default_decisions),
            }
            logger.info(
                "Decision thresholds tuned for %d of %d labels on the validation split (%s; macro-F1 %.4f, at 0.5 "
                "%.4f)%s.",
                len(tuned),
                len(label_names),
                threshold_metric,
                fits["threshold"]["validation_f1_macro"],
                fits["threshold"]["validation_f1_macro_at_default"],
                f"; {len(kept)} too rare on validation keep 0.5" if kept else "",
            )
        return calibration, fits

    def score(
        self,
        logits: np.ndarray,
        gold: np.ndarray,
        label_names: list[str],
        seconds: float,
        texts: Sequence[str],
        pairs: Sequence[str] | None,
        calibration: MultiLabelCalibration | None = None,
        fitted: Sequence[str] = (),
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Metrics (with the cells' NLL as ``loss``, samples/s and the cells' calibration) and per-example rows
        (gold and predicted label lists, whether the whole set is right, every label's score)."""
        target = as_multi_hot(gold, len(label_names))
        probabilities, predicted = self.predict(logits, calibration)
        metrics = multi_label_metrics(target, predicted, probabilities, label_names)
        metrics["eval_samples_per_second"] = round(len(texts) / seconds, 2) if seconds > 0 else None
        metrics["loss"] = cell_nll(probabilities, target)
        metrics["calibration"] = cell_calibration(probabilities, target)
        if "temperature" in fitted:
            plain, plain_decisions = self.predict(logits)
            metrics["before_calibration"] = {
                "f1_macro": multi_label_metrics(target, plain_decisions, plain, label_names)["f1_macro"],
                **(cell_calibration(plain, target) or {}),
            }
        if "threshold" in fitted and calibration is not None:
            at_default = dataclasses.replace(calibration, thresholds=None)
            scores = multi_label_metrics(target, self.decide(probabilities, at_default), probabilities, label_names)
            keys = ("f1_macro", "f1_micro", "f1_weighted", "precision_macro", "recall_macro", "subset_accuracy")
            metrics["before_threshold"] = {key: scores[key] for key in keys} | {"per_label": scores["per_label"]}
        rows = [
            {
                "index": i,
                "text": texts[i],
                **({"text_pair": pairs[i]} if pairs is not None else {}),
                "gold": [label_names[j] for j in np.flatnonzero(target[i])],
                "labels": [label_names[j] for j in _selected_order(probabilities[i], predicted[i])],
                "correct": bool((target[i].astype(bool) == predicted[i]).all()),
                "scores": {name: round(float(p), 6) for name, p in zip(label_names, probabilities[i], strict=True)},
            }
            for i in range(len(texts))
        ]
        return metrics, rows

    # --- what a predictor answers -------------------------------------------------------------------------------

    def prediction_results(
        self,
        probabilities: np.ndarray,
        label_names: list[str],
        calibration: MultiLabelCalibration | None = None,
        top_k: int = 1,
    ) -> list[dict[str, Any]]:
        """For each row: ``{"labels": [every label over its threshold, highest score first], "label": the first of
        them or None, "score": its score or None, "scores": [{"label", "score", "selected"}, ...]}``. ``scores``
        holds the selected labels and the next highest up to ``top_k`` (a row may select none)."""
        decisions = self.decide(probabilities, calibration)
        results = []
        for row, selected in zip(np.asarray(probabilities), decisions, strict=True):
            chosen = _selected_order(row, selected)
            order = np.argsort(-row, kind="stable")[: max(top_k, len(chosen), 1)]
            results.append(
                {
                    "labels": [label_names[i] for i in chosen],
                    "label": label_names[chosen[0]] if chosen else None,
                    "score": round(float(row[chosen[0]]), 6) if chosen else None,
                    "scores": [
                        {"label": label_names[i], "score": round(float(row[i]), 6), "selected": bool(selected[i])}
                        for i in order
                    ],
                }
            )
        return results

    def ranked_labels(
        self, scores: np.ndarray, calibration: MultiLabelCalibration | None = None, raw: bool = False
    ) -> list[int]:
        """Highest score first (a label's score and its decision rise together: one sigmoid per label)."""
        return [int(i) for i in np.argsort(-np.asarray(scores), kind="stable")]

    def selected(
        self, scores: np.ndarray, calibration: MultiLabelCalibration | None = None, raw: bool = False
    ) -> list[bool] | None:
        """Which labels of one row of scores pass their thresholds (``raw``: logits, decided on their
        probabilities)."""
        probabilities = self.probabilities(np.asarray(scores)[None, :], calibration)[0] if raw else scores
        return [bool(flag) for flag in self.decide(np.asarray(probabilities)[None, :], calibration)[0]]

    def info(self, calibration: MultiLabelCalibration | None = None) -> dict[str, Any]:
        """Multi-label, the temperature, and each label's decision threshold (None: 0.5 for every label)."""
        calibration = calibration or MultiLabelCalibration()
        return {
            "problem_type": self.problem_type,
            "multi_label": True,
            "temperature": float(calibration.temperature),
            "decision_threshold": DEFAULT_THRESHOLD if calibration.thresholds is None else None,
            "decision_thresholds": None if calibration.thresholds is None else list(calibration.thresholds),
        }


def _selected_order(row: np.ndarray, selected: np.ndarray) -> list[int]:
    """The selected labels of one row, highest score first."""
    chosen = np.flatnonzero(selected)
    return [int(i) for i in chosen[np.argsort(-row[chosen], kind="stable")]]


def _f1_macro(gold: np.ndarray, predicted: np.ndarray) -> float:
    return float(precision_recall_fscore_support(gold, predicted, average="macro", zero_division=0)[2])


MULTI_LABEL_TASK = register_task(MultiLabelTask())
"""The multi-label task (``get_task("multi_label")``)."""


__all__ = [
    "DEFAULT_THRESHOLD",
    "HEADLINE_METRICS",
    "MIN_TUNING_POSITIVES",
    "MULTI_LABEL_TASK",
    "SELECTABLE_METRICS",
    "MultiLabelCalibration",
    "MultiLabelTask",
    "as_multi_hot",
    "cell_calibration",
    "cell_nll",
    "multi_label_loss",
    "multi_label_metrics",
    "sigmoid",
]
