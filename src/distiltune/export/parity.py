"""The export's parity check: the exported model and the PyTorch model predict the same rows, and the export is
refused when they clearly disagree too often.

This measures agreement between two implementations of one model, not accuracy, so the rows can come from every
split, training rows included: up to ``max_samples`` (default 1,000) drawn in equal shares from the run's train,
validation and test splits (reloaded from the run's config; when the data is gone, the evaluated split's rows in
``predictions.jsonl``). Agreement is reported with its Wilson 95% interval, and the export is refused only when the
whole interval lies below ``min_agreement``: one flipped row out of 30 is not evidence of a bad export.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from distiltune import runs
from distiltune.data import load_data
from distiltune.errors import DistiltuneError, RunError
from distiltune.inference.batched import predict_logits

#: Label agreement with PyTorch below which an export is refused. fp32 differs from PyTorch only by float
#: rounding; int8 flips a few borderline rows (measured 98.2% to 99.0% on IMDb with MiniLM, at an accuracy
#: change within a point), so it gets a lower bar.
DEFAULT_MIN_AGREEMENT = {None: 0.99, "int8": 0.98}
#: Rows the parity check predicts with both models (at most): enough for a Wilson interval of about +-0.6 points
#: at 99% agreement.
DEFAULT_PARITY_SAMPLES = 1000
#: Confidence level of the agreement's two-sided Wilson interval.
AGREEMENT_CONFIDENCE = 0.95

logger = logging.getLogger("distiltune")


def wilson_interval(agreeing: int, total: int, confidence: float = AGREEMENT_CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of a proportion (agreeing / total) at ``confidence``
    (``scipy.stats.binomtest(...).proportion_ci(method="wilson")``); (0, 1) for no rows."""
    if total == 0:
        return 0.0, 1.0
    interval = binomtest(agreeing, total).proportion_ci(confidence_level=confidence, method="wilson")
    return max(0.0, float(interval.low)), min(1.0, float(interval.high))


def clearly_below(report: dict[str, Any], min_agreement: float) -> bool:
    """True when even the upper end of the agreement's interval is below ``min_agreement``."""
    return report["agreement_interval"][1] < min_agreement


def parity_inputs(
    reference: Any, max_samples: int | None = DEFAULT_PARITY_SAMPLES, seed: int | None = None
) -> tuple[list[str], list[str] | None, list[str] | None, dict[str, int]]:
    """Texts, pairs and gold label names to check an export on, and how many rows came from each split.

    Equal shares of ``max_samples`` from every split of the run's data (a split with fewer rows leaves its share to
    the others), drawn with ``seed`` (default: the run's). When the run's data cannot be loaded any more, the rows of
    ``predictions.jsonl`` (the evaluated split) are used instead.
    """
    config = reference.config
    seed = config.train.seed if seed is None else seed
    try:
        data = load_data(config.data, seed=config.train.seed)
        splits = {name: frame for name, frame in data.splits().items() if len(frame)}
        names = data.labels.names
    except DistiltuneError as err:
        logger.warning("Cannot reload the run's data (%s); checking the export on %s.", err, runs.PREDICTIONS_FILE)
        return _prediction_rows(reference, max_samples)
    chosen = _equal_shares(splits, max_samples, seed)
    frame = pd.concat(chosen.values(), ignore_index=True) if chosen else pd.DataFrame(columns=["text", "label"])
    pairs = frame["text_pair"].tolist() if reference.is_pair and "text_pair" in frame.columns else None
    gold: list[Any] = [
        [names[int(i)] for i in label] if isinstance(label, list | tuple | np.ndarray) else names[int(label)]
        for label in frame["label"]
    ]
    return frame["text"].tolist(), pairs, gold, {name: len(rows) for name, rows in chosen.items()}


def _equal_shares(splits: dict[str, pd.DataFrame], total: int | None, seed: int) -> dict[str, pd.DataFrame]:
    if total is None:
        return splits
    quotas = {name: 0 for name in splits}
    left = total
    open_splits = [name for name in splits if len(splits[name])]
    while left > 0 and open_splits:
        share = max(1, left // len(open_splits))
        for name in list(open_splits):
            take = min(share, len(splits[name]) - quotas[name], left)
            quotas[name] += take
            left -= take
            if quotas[name] >= len(splits[name]):
                open_splits.remove(name)
            if left == 0:
                break
    return {
        name: frame.sample(n=quotas[name], random_state=seed) if quotas[name] < len(frame) else frame
        for name, frame in splits.items()
        if quotas[name]
    }


def _prediction_rows(
    reference: Any, max_samples: int | None
) -> tuple[list[str], list[str] | None, list[str] | None, dict[str, int]]:
    run_dir = reference.run_dir
    rows = runs.read_jsonl(run_dir / runs.PREDICTIONS_FILE) if run_dir is not None else []
    rows = [row for row in rows if isinstance(row.get("text"), str)]
    if not rows:
        raise RunError(
            f"{run_dir}: its data cannot be reloaded and it has no {runs.PREDICTIONS_FILE} with texts to check the "
            "export against.",
            "Make the run's dataset reachable again (config.yaml, data.dataset), or re-run distiltune evaluate.",
        )
    if max_samples is not None:
        rows = rows[:max_samples]
    pairs = [row.get("text_pair", "") for row in rows] if reference.is_pair else None
    gold = [row["gold"] for row in rows] if all("gold" in row for row in rows) else None
    return [row["text"] for row in rows], pairs, gold, {runs.PREDICTIONS_FILE: len(rows)}


def parity_report(
    reference: Any,
    exported: Any,
    texts: list[str],
    pairs: list[str] | None,
    gold: list[str] | None,
    batch_size: int | None,
) -> dict[str, Any]:
    """Agreement of the two models' decisions (the run's task decides, on the uncalibrated scores: a temperature
    never changes a decision, so both models are compared on what they compute), the largest probability difference,
    and each model's accuracy."""
    task = reference.task

    def run(model: Any, backend: str) -> tuple[np.ndarray, float]:
        settings = reference.inference_settings(batch_size, backend)  # the reference is loaded on the CPU
        started = time.perf_counter()
        logits = predict_logits(model, reference.tokenizer, texts, pairs, settings)
        return task.probabilities(logits), time.perf_counter() - started

    torch_probabilities, torch_seconds = run(reference.model, "torch")
    onnx_probabilities, onnx_seconds = run(exported, "onnx")
    torch_labels = task.decide(torch_probabilities)
    onnx_labels = task.decide(onnx_probabilities)
    # A row agrees when its whole decision does: one label, or every label of a multi-label row.
    agreeing = int(task.agreement(torch_labels, onnx_labels).sum())
    report: dict[str, Any] = {
        "samples": len(texts),
        "agreement": agreeing / len(texts) if len(texts) else 0.0,
        "agreement_interval": [round(bound, 6) for bound in wilson_interval(agreeing, len(texts))],
        "max_probability_difference": float(np.abs(torch_probabilities - onnx_probabilities).max(initial=0.0)),
        **(
            {"label_agreement": float((np.asarray(torch_labels) == np.asarray(onnx_labels)).mean())}
            if np.asarray(torch_labels).ndim == 2 and len(texts)
            else {}
        ),
        "torch_samples_per_second": round(len(texts) / torch_seconds, 2),
        "onnx_samples_per_second": round(len(texts) / onnx_seconds, 2),
    }
    if gold is not None:
        names = reference.label_names
        if gold and isinstance(gold[0], list):  # multi-label: every label of the row right (subset accuracy)
            gold_ids: Any = task.gold([[names.index(n) for n in labels if n in names] for labels in gold], len(names))
        else:
            gold_ids = np.array([names.index(label) if label in names else -1 for label in gold])
        report["torch_accuracy"] = float(task.agreement(torch_labels, gold_ids).mean())
        report["onnx_accuracy"] = float(task.agreement(onnx_labels, gold_ids).mean())
    return report


__all__ = [
    "AGREEMENT_CONFIDENCE",
    "DEFAULT_MIN_AGREEMENT",
    "DEFAULT_PARITY_SAMPLES",
    "clearly_below",
    "parity_inputs",
    "parity_report",
    "wilson_interval",
]
