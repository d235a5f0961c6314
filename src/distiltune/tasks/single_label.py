"""Single-label classification: one label per text (or text pair), a softmax over the labels, the argmax or a tuned
threshold as the decision. The first implementation of :class:`~distiltune.tasks.base.Task`, and every run so far.

Besides the task itself (:data:`SINGLE_LABEL_TASK`), the pure functions it is made of: the metric set
(:func:`classification_metrics`), the loss (:func:`classification_loss`: cross-entropy or focal, class-weighted)
and the ``predictions.jsonl`` rows (:func:`score_predictions`). Calibration's numerics are in
:mod:`distiltune.tasks.calibration`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from distiltune.errors import ConfigError
from distiltune.tasks.base import SINGLE_LABEL, Task, evaluation_arrays, register_task
from distiltune.tasks.calibration import (
    TEMPERATURE_BOUNDS,
    Calibration,
    calibration_report,
    fit_temperature_details,
    require_binary,
    tune_threshold,
)
from distiltune.tasks.metrics import ToDocuments, negative_log_likelihood, scalar_metrics, softmax

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("distiltune")

#: Metrics that can pick the best checkpoint; all are "higher is better" except eval loss.
SELECTABLE_METRICS = (
    "accuracy",
    "f1_macro",
    "f1_weighted",
    "precision_macro",
    "recall_macro",
    "precision_weighted",
    "recall_weighted",
    "f1",
    "precision",
    "recall",
    "loss",
)
#: Metrics defined for two labels only (the second label is the positive class).
BINARY_METRICS = ("f1", "precision", "recall")
#: What the CLI's table shows per split (each where a split has it).
HEADLINE_METRICS = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "f1_weighted",
    "precision",
    "recall",
    "f1",
    "samples",
)

LossKind = Literal["cross_entropy", "focal"]
LOSS_KINDS: tuple[str, ...] = ("cross_entropy", "focal")
IGNORE_INDEX = -100
"""Label id that contributes nothing (the Trainer's and torch's convention)."""


# --- metrics -------------------------------------------------------------------------------------------------


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    """Accuracy, macro/weighted P/R/F1, per-class P/R/F1/support and the confusion matrix.

    For two classes, also binary P/R/F1 with the second label (id 1) as the positive class.
    """
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    ids = list(range(len(label_names)))
    out: dict[str, Any] = {"accuracy": float(accuracy_score(labels, predictions)), "samples": int(len(labels))}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(labels, predictions, labels=ids, average=average, zero_division=0)
        out[f"precision_{average}"], out[f"recall_{average}"], out[f"f1_{average}"] = float(p), float(r), float(f)
    if len(label_names) == 2:
        p, r, f, _ = precision_recall_fscore_support(
            labels, predictions, labels=ids, pos_label=1, average="binary", zero_division=0
        )
        out["precision"], out["recall"], out["f1"] = float(p), float(r), float(f)
    p, r, f, support = precision_recall_fscore_support(labels, predictions, labels=ids, zero_division=0)
    out["per_class"] = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
        for i, name in enumerate(label_names)
    }
    out["confusion_matrix"] = {
        "labels": list(label_names),
        "matrix": confusion_matrix(labels, predictions, labels=ids).tolist(),
    }
    return out


def score_predictions(
    texts: Sequence[str],
    pairs: Sequence[str] | None,
    gold: np.ndarray,
    probabilities: np.ndarray,
    label_names: list[str],
    seconds: float,
    predicted: np.ndarray | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What an evaluation reports for labelled examples predicted in ``seconds``: the metrics (with samples/s), and
    one row per example as written to ``predictions.jsonl`` (its text and pair, gold and predicted label, whether
    they match, every label's probability). ``predicted`` label ids default to the most probable label; a decision
    threshold gives its own."""
    if predicted is None:
        predicted = SINGLE_LABEL_TASK.decide(probabilities)
    metrics = classification_metrics(gold, predicted, label_names)
    metrics["eval_samples_per_second"] = round(len(texts) / seconds, 2) if seconds > 0 else None
    rows = [
        {
            "index": i,
            "text": texts[i],
            **({"text_pair": pairs[i]} if pairs is not None else {}),
            "gold": label_names[int(gold[i])],
            "predicted": label_names[int(predicted[i])],
            "correct": bool(gold[i] == predicted[i]),
            "probabilities": {name: round(float(p), 6) for name, p in zip(label_names, probabilities[i], strict=True)},
        }
        for i in range(len(texts))
    ]
    return metrics, rows


def calibration_or_none(probabilities: np.ndarray, gold: np.ndarray) -> dict[str, Any] | None:
    """ECE, Brier, NLL and the reliability table of an evaluation (None for no rows or NaN scores: a diverged
    model still gets its other metrics)."""
    if len(gold) == 0 or np.isnan(probabilities).any():
        return None
    return calibration_report(probabilities, np.asarray(gold).astype(np.int64))


# --- loss ----------------------------------------------------------------------------------------------------


def classification_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: Sequence[float] | torch.Tensor | None = None,
    kind: LossKind | str = "cross_entropy",
    gamma: float = 2.0,
    reduction: Literal["mean", "sum", "none"] = "mean",
) -> torch.Tensor:
    """Cross-entropy or focal loss of ``logits [n, classes]`` against label ids ``[n]``, in float32.

    Per row: ``-w[y] * (1 - p_y) ** gamma * log p_y`` with ``gamma = 0`` for cross-entropy (focal loss, Lin et al.
    2017, with the class weight in the role of its alpha). Rows labelled -100 contribute nothing.

    ``reduction="mean"`` divides the sum by the number of labelled rows, not by the sum of their weights as
    ``torch.nn.functional.cross_entropy(weight=...)`` does. Dividing by the count is what lets micro-batches add up
    to the accumulated batch exactly (the Trainer counts items, not weights), and it keeps the weighting across
    batches: a batch of majority rows weighs less than a batch of minority rows instead of being rescaled to match.
    With ``balanced`` weights the two averages agree in expectation, since the weights average to 1 over the data.
    """
    import torch  # the task's other parts run without torch (the server's and the CLI's imports stay light)
    import torch.nn.functional as F

    check_loss(kind, gamma)
    logits = logits.float()  # autocast may hand bf16/fp16 logits; the loss and its log-probabilities stay in fp32
    labels = labels.view(-1).long()
    logits = logits.view(labels.shape[0], -1)
    labelled = labels != IGNORE_INDEX
    safe_labels = torch.where(labelled, labels, torch.zeros_like(labels))
    log_p = F.log_softmax(logits, dim=-1).gather(1, safe_labels.unsqueeze(1)).squeeze(1)
    per_row = -log_p
    if kind == "focal" and gamma != 0:
        # 1 - p_y as -expm1(log p_y) keeps its precision near p_y = 1; the floor keeps the gradient of
        # (1 - p_y) ** gamma finite there for gamma < 1 (where it would be 0 * inf = NaN).
        per_row = per_row * (-torch.expm1(log_p)).clamp(min=1e-12).pow(gamma)
    if weights is not None:
        weight = torch.as_tensor(weights, dtype=per_row.dtype, device=per_row.device)
        if weight.shape != (logits.shape[1],):
            raise ValueError(f"expected {logits.shape[1]} class weights, got shape {tuple(weight.shape)}")
        per_row = per_row * weight[safe_labels]
    per_row = torch.where(labelled, per_row, torch.zeros_like(per_row))
    if reduction == "none":
        return per_row
    total = per_row.sum()
    if reduction == "sum":
        return total
    return total / labelled.sum().clamp(min=1)


def check_loss(kind: str, gamma: float) -> None:
    """One-line ConfigErrors for an unknown ``train.loss`` or a negative ``train.focal_gamma``."""
    if kind not in LOSS_KINDS:
        raise ConfigError(f"train.loss must be one of {', '.join(LOSS_KINDS)}; got '{kind}'.")
    if kind == "focal" and gamma < 0:
        raise ConfigError(f"train.focal_gamma must be >= 0, got {gamma}.")


# --- the task ------------------------------------------------------------------------------------------------


class SingleLabelTask(Task[Calibration]):
    """One label per input: softmax probabilities, the argmax (or, for two labels, a tuned threshold on one label's
    probability) as the decision, accuracy and macro/weighted/binary P/R/F1 as the metrics."""

    name = SINGLE_LABEL
    problem_type = "single_label_classification"
    selectable_metrics = SELECTABLE_METRICS
    default_metric = "f1_macro"
    headline_metrics = HEADLINE_METRICS
    progress_metrics = ("accuracy", "f1_macro")

    def check_metric(self, metric: str, num_labels: int) -> None:
        if metric not in SELECTABLE_METRICS or (metric in BINARY_METRICS and num_labels != 2):
            raise ConfigError(
                f"train.metric '{metric}' is not available here.",
                f"Choose one of: {', '.join(m for m in SELECTABLE_METRICS if m not in BINARY_METRICS)}.",
            )

    def check_calibration_settings(self, num_labels: int, tune_threshold: bool) -> None:
        if tune_threshold:
            require_binary(num_labels, "train.tune_threshold (--tune-threshold)")

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
        return classification_loss(logits, labels, weights, kind, gamma, reduction)

    def label_counts(self, labels: Any, num_labels: int) -> list[int]:
        """Rows per label id."""
        ids = np.asarray(labels, dtype=np.int64)
        return np.bincount(ids, minlength=num_labels)[:num_labels].astype(int).tolist()

    def balanced_weights(self, labels: Any, num_labels: int) -> list[float]:
        """scikit-learn's ``balanced`` rule, ``n_samples / (n_classes * count[c])``: every class then carries the
        same total weight, and the weights average to 1 over the training rows."""
        counts = self.label_counts(labels, num_labels)
        return [sum(counts) / (num_labels * count) for count in counts]

    def gold(self, labels: Any, num_labels: int) -> np.ndarray:
        return np.asarray(labels, dtype=np.int64)

    def nll(self, probabilities: np.ndarray, labels: Any, num_labels: int) -> float:
        return negative_log_likelihood(probabilities, np.asarray(labels))

    def compute_metrics(
        self, label_names: list[str], to_documents: ToDocuments | None = None
    ) -> Callable[[Any], dict[str, float]]:
        """Scalar metrics only (Trainer logs must be flat), of the logits' argmax.

        ``to_documents`` scores documents instead of rows when a row is one window of a document; it relies on the
        Trainer's evaluation keeping the evaluation set's row order."""

        def compute(eval_prediction: Any) -> dict[str, float]:
            logits, labels = evaluation_arrays(eval_prediction, to_documents)
            # The argmax of the logits is the argmax of their softmax: no probabilities needed.
            predictions = np.asarray(logits).argmax(axis=-1)
            metrics = classification_metrics(labels, predictions, label_names)
            return {k: v for k, v in scalar_metrics(metrics).items() if k != "samples"}

        return compute

    # --- logits -> probabilities -> decisions ---------------------------------------------------------------

    def identity_calibration(self) -> Calibration:
        return Calibration()

    def read_calibration(self, raw: dict[str, Any], label_names: list[str], source: str) -> Calibration:
        return Calibration.from_dict(raw, label_names, source=source)

    def probabilities(self, logits: Any, calibration: Calibration | None = None) -> np.ndarray:
        """Without a calibration (or with the identity) the plain softmax every run used before calibration
        existed, bit for bit, in the logits' dtype; otherwise logits / T and a float64 softmax."""
        if calibration is None or calibration.is_identity:
            return softmax(np.asarray(logits))
        return calibration.probabilities(logits)

    def decide(self, probabilities: Any, calibration: Calibration | None = None) -> np.ndarray:
        """The run's decision threshold when it tuned one, else the most probable label."""
        if calibration is None or calibration.threshold is None:
            return np.asarray(probabilities).argmax(axis=-1)
        return calibration.labels(probabilities)

    def agreement(self, decisions: np.ndarray, other: np.ndarray) -> np.ndarray:
        return np.asarray(decisions) == np.asarray(other)

    # --- evaluation ---------------------------------------------------------------------------------------------

    def fit_calibration(
        self,
        validation_logits: np.ndarray,
        validation_labels: np.ndarray,
        train_labels: np.ndarray,
        label_names: list[str],
        temperature: bool,
        threshold_metric: str | None,
    ) -> tuple[Calibration, dict[str, Any]]:
        """The temperature first, then the threshold on the minority label (of the training split) tuned on the
        temperature-scaled probabilities, as they are applied."""
        labels = np.asarray(validation_labels).astype(np.int64)
        calibration = Calibration()
        fits: dict[str, Any] = {}
        if temperature:
            fit = fit_temperature_details(validation_logits, labels)
            calibration = Calibration(temperature=fit.temperature)
            report = fit.to_dict()
            fits["temperature"] = {
                "value": report.pop("temperature"),
                **report,
                "bounds": list(TEMPERATURE_BOUNDS),
                "split": "validation",
            }
            logger.info(
                "Temperature %.4f fitted on %d validation rows (NLL %.4f -> %.4f%s).",
                fit.temperature,
                fit.rows,
                fit.nll_before,
                fit.nll_after,
                "" if fit.accepted else f"; the optimum {fit.optimum:.4f} did not improve it enough, so T stays 1",
            )
        if threshold_metric is not None:
            require_binary(len(label_names), "train.tune_threshold (--tune-threshold)")
            counts = np.bincount(np.asarray(train_labels).astype(np.int64), minlength=2)
            minority = int(np.argmin(counts))  # ties: the first label
            probabilities = calibration.probabilities(validation_logits)  # tuned after the temperature, as applied
            threshold = tune_threshold(probabilities, labels, minority, threshold_metric)
            calibration = dataclasses.replace(calibration, threshold=threshold, threshold_label_id=minority)
            tuned = _threshold_score(
                labels, calibration.labels(probabilities), label_names, threshold_metric, minority
            )
            argmax = _threshold_score(labels, self.decide(probabilities), label_names, threshold_metric, minority)
            fits["threshold"] = {
                "value": threshold,
                "label": label_names[minority],
                "label_id": minority,
                "metric": threshold_metric,
                "validation_score": tuned,
                "validation_score_argmax": argmax,
            }
            logger.info(
                "Decision threshold %.4f on P(%s) (validation %s %.4f, argmax %.4f).",
                threshold,
                label_names[minority],
                threshold_metric,
                tuned,
                argmax,
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
        calibration: Calibration | None = None,
        fitted: Sequence[str] = (),
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Metrics (with the log loss, samples/s and calibration) and per-example predictions (gold, predicted,
        probabilities)."""
        probabilities, predicted = self.predict(logits, calibration)
        metrics, rows = score_predictions(texts, pairs, gold, probabilities, label_names, seconds, predicted)
        metrics["loss"] = negative_log_likelihood(probabilities, gold)
        metrics["calibration"] = calibration_or_none(probabilities, gold)
        if "temperature" in fitted:
            metrics["before_calibration"] = self._before_calibration(logits, gold, label_names)
        if "threshold" in fitted:
            metrics["before_threshold"] = self._before_threshold(logits, gold, label_names, calibration)
        return metrics, rows

    def _before_calibration(self, logits: np.ndarray, gold: np.ndarray, names: list[str]) -> dict[str, Any]:
        """The same model at T = 1 (argmax labels): what the temperature changed."""
        probabilities, predicted = self.predict(logits)
        report = calibration_or_none(probabilities, gold) or {}
        return {"accuracy": classification_metrics(gold, predicted, names)["accuracy"], **report}

    def _before_threshold(
        self, logits: np.ndarray, gold: np.ndarray, names: list[str], calibration: Calibration
    ) -> dict[str, Any]:
        """The calibrated probabilities' argmax labels: what the decision threshold changed."""
        probabilities = calibration.probabilities(logits)
        scores = classification_metrics(gold, self.decide(probabilities), names)
        keys = ("accuracy", "f1_macro", "precision", "recall", "f1", "per_class")
        return {key: scores[key] for key in keys if key in scores}

    # --- what a predictor answers -------------------------------------------------------------------------------

    def prediction_results(
        self,
        probabilities: np.ndarray,
        label_names: list[str],
        calibration: Calibration | None = None,
        top_k: int = 1,
    ) -> list[dict[str, Any]]:
        """For each row: ``{"label": predicted, "score": its p, "scores": [{"label", "score"}, ... top_k]}``, scores
        highest first.

        A run with a tuned decision threshold predicts its thresholded label, which may not be the most probable
        one: each row then lists every label's score and adds ``"threshold": {"label", "value"}``, the label whose
        probability is compared with the threshold."""
        predicted = self.decide(probabilities, calibration)
        threshold = None if calibration is None else calibration.threshold
        top_k = len(label_names) if threshold is not None else max(1, min(top_k, len(label_names)))
        results = []
        for row, label_id in zip(probabilities, predicted, strict=True):
            order = np.argsort(-row, kind="stable")[:top_k]
            scores = [{"label": label_names[i], "score": round(float(row[i]), 6)} for i in order]
            result = {"label": label_names[label_id], "score": round(float(row[label_id]), 6), "scores": scores}
            if threshold is not None and calibration.threshold_label_id is not None:
                result["threshold"] = {
                    "label": label_names[calibration.threshold_label_id],
                    "value": round(threshold, 6),
                }
            results.append(result)
        return results

    def ranked_labels(
        self, scores: np.ndarray, calibration: Calibration | None = None, raw: bool = False
    ) -> list[int]:
        """Highest score first; with a tuned decision threshold, which may pick a label other than the highest
        score, the decided label first (like ``Classifier.predict``'s ``label``). ``raw`` scores are logits: the
        decision is taken on their calibrated probabilities."""
        order = np.argsort(-np.asarray(scores), kind="stable")
        if calibration is None or calibration.threshold is None:
            return [int(i) for i in order]
        probabilities = self.probabilities(scores[None, :], calibration)[0] if raw else np.asarray(scores)
        decided = int(self.decide(probabilities[None, :], calibration)[0])
        return [decided, *[int(i) for i in order if i != decided]]

    def info(self, calibration: Calibration | None = None) -> dict[str, Any]:
        """The temperature (1: none) and the tuned decision threshold (None: the most probable label)."""
        calibration = calibration or Calibration()
        return {"temperature": float(calibration.temperature), "decision_threshold": calibration.threshold}


def _threshold_score(labels: np.ndarray, predicted: np.ndarray, names: list[str], metric: str, label_id: int) -> float:
    scores = classification_metrics(labels, predicted, names)
    if metric == "f1":
        return scores["per_class"][names[label_id]]["f1"]
    return {"f1_macro": scores["f1_macro"], "balanced_accuracy": scores["recall_macro"]}.get(
        metric, scores["accuracy"]
    )


SINGLE_LABEL_TASK = register_task(SingleLabelTask())
"""The single-label task (``get_task("single_label")``)."""


__all__ = [
    "BINARY_METRICS",
    "HEADLINE_METRICS",
    "IGNORE_INDEX",
    "LOSS_KINDS",
    "SELECTABLE_METRICS",
    "SINGLE_LABEL_TASK",
    "SingleLabelTask",
    "calibration_or_none",
    "check_loss",
    "classification_loss",
    "classification_metrics",
    "score_predictions",
]
