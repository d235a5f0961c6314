"""Classification metrics as pure functions of gold labels and predicted probabilities (no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

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


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def log_loss(probabilities: np.ndarray, gold: np.ndarray) -> float:
    """Mean negative log-likelihood of the gold labels (probabilities clipped at 1e-12, so a confident miss counts
    as 27.6 nats instead of infinity)."""
    picked = np.asarray(probabilities)[np.arange(len(gold)), np.asarray(gold).astype(int)]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0)))) if len(gold) else float("nan")


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


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The flat numeric part of a metrics dict (what history rows and checkpoint selection use)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


#: ``(row logits, row labels) -> (document logits, document labels)``: how the Trainer's evaluation turns the rows
#: of a split read in windows (``data.long_text=chunks``) back into its documents.
ToDocuments = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def trainer_compute_metrics(label_names: list[str], to_documents: ToDocuments | None = None):
    """A ``compute_metrics`` for the HF Trainer: scalar metrics only (Trainer logs must be flat).

    ``to_documents`` scores documents instead of rows when a row is one window of a document; it relies on the
    Trainer's evaluation keeping the evaluation set's row order."""

    def compute(eval_prediction: Any) -> dict[str, float]:
        logits = eval_prediction.predictions
        if isinstance(logits, tuple):
            logits = logits[0]
        labels = eval_prediction.label_ids
        if to_documents is not None:
            logits, labels = to_documents(np.asarray(logits), np.asarray(labels))
        predictions = np.asarray(logits).argmax(axis=-1)
        metrics = classification_metrics(labels, predictions, label_names)
        return {k: v for k, v in scalar_metrics(metrics).items() if k != "samples"}

    return compute


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
        predicted = probabilities.argmax(axis=-1)
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
