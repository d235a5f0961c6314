"""Evaluate a model on a standardized split, or a saved run on new data (``distiltune evaluate``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distiltune import runs
from distiltune.inference import predict_logits
from distiltune.metrics import score_predictions, softmax

logger = logging.getLogger("distiltune")


def evaluate_frame(
    model: Any,
    tokenizer: Any,
    frame: pd.DataFrame,
    label_names: list[str],
    max_length: int,
    batch_size: int,
    device: Any,
    precision: str,
    sort_by_length: bool = True,
    dynamic_padding: bool = True,
    max_batch_tokens: int | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics and per-example predictions (gold, predicted, probabilities) for a labelled frame."""
    started = time.perf_counter()
    pairs = frame["text_pair"].tolist() if "text_pair" in frame.columns else None
    logits = predict_logits(
        model,
        tokenizer,
        frame["text"].tolist(),
        pairs,
        max_length=max_length,
        batch_size=batch_size,
        device=device,
        precision=precision,
        sort_by_length=sort_by_length,
        dynamic_padding=dynamic_padding,
        max_batch_tokens=max_batch_tokens,
    )
    seconds = time.perf_counter() - started
    gold = frame["label"].to_numpy()
    return score_predictions(frame["text"].tolist(), pairs, gold, softmax(logits), label_names, seconds)


def evaluate(
    run_dir: str | Path, dataset: str, output: str | Path | None = None, **load_kwargs: Any
) -> dict[str, Any]:
    """Evaluate a saved run on ``dataset`` (file, folder, preset or hub id) mapped with the run's columns.

    Writes ``eval_<name>.json`` and ``eval_<name>.predictions.jsonl`` into the run directory (or ``output``).
    """
    from distiltune.data import load_eval_file
    from distiltune.predict import Classifier

    classifier = Classifier.load(run_dir, **load_kwargs)
    frame = load_eval_file(dataset, classifier.config.data, classifier.labels)
    metrics, rows = classifier.evaluate_frame(frame)
    metrics = {"dataset": dataset, **metrics}
    stem = runs.slug(dataset)
    target = Path(output) if output else Path(run_dir) / f"eval_{stem}.json"
    runs.write_json(target, metrics)
    runs.write_jsonl(target.with_suffix(".predictions.jsonl"), rows)
    metrics["written_to"] = str(target)
    return metrics


_ = np
