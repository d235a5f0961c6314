"""Evaluate a saved run on new labelled data (``distiltune evaluate``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from distiltune import runs
from distiltune.data import load_eval_file
from distiltune.inference.classifier import Classifier
from distiltune.tasks.base import SINGLE_LABEL

logger = logging.getLogger("distiltune")


def evaluate(
    run_dir: str | Path,
    dataset: str,
    output: str | Path | None = None,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    **load_kwargs: Any,
) -> dict[str, Any]:
    """Evaluate a saved run on ``dataset`` (file, folder, preset or hub id).

    Columns: the ``*_column`` arguments when given, else the run's own columns where the data has them, else
    detected as ``train`` detects them. Writes ``eval_<name>.json``, ``eval_<name>.predictions.jsonl`` and the
    reliability diagram ``eval_<name>.reliability.png`` into the run directory (or next to ``output``).
    """
    classifier = Classifier.load(run_dir, **load_kwargs)
    frame = load_eval_file(
        dataset,
        classifier.config.data,
        classifier.labels,
        classifier.is_pair,
        text_column=text_column,
        text_pair_column=text_pair_column,
        label_column=label_column,
    )
    metrics, rows = classifier.evaluate_frame(frame)
    task = {"task": classifier.task.name} if classifier.task.name != SINGLE_LABEL else {}
    metrics = {"dataset": dataset, **task, **metrics}
    stem = runs.slug(dataset)
    target = Path(output) if output else Path(run_dir) / f"eval_{stem}.json"
    runs.write_json(target, metrics)
    runs.write_jsonl(target.with_suffix(".predictions.jsonl"), rows)
    metrics["written_to"] = str(target)
    if metrics.get("calibration"):
        from distiltune.plots import plot_reliability_diagram  # matplotlib loads only when there is a figure

        figure = plot_reliability_diagram(
            {"": metrics["calibration"]["reliability"]},
            target.with_suffix(".reliability.png"),
            title=f"Reliability diagram ({stem})",
        )
        metrics["reliability_plot"] = str(figure)
    return metrics


__all__ = ["evaluate"]
