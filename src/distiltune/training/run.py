"""What every finished run shares, whatever trained it: the :class:`Run` handle, the evaluation of its splits, and
the final files (``predictions.jsonl``, ``metrics.json``, plots)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distiltune import runs
from distiltune.config import Config
from distiltune.data import PreparedData
from distiltune.errors import ConfigError
from distiltune.metrics import SELECTABLE_METRICS
from distiltune.plots import plot_run
from distiltune.serving.classifier import Classifier
from distiltune.serving.scoring import LogitsFunction, score_frame

logger = logging.getLogger("distiltune")

#: Metrics defined for two labels only (the second label is the positive class).
BINARY_METRICS = ("f1", "precision", "recall")


@dataclass
class Run:
    """A finished run: its directory, resolved config and final metrics."""

    dir: Path
    config: Config
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)

    def load(self, **kwargs: Any) -> Any:
        """The trained model as a :class:`~distiltune.serving.Classifier`."""
        return Classifier.load(self.dir, **kwargs)


def check_metric(metric: str, num_labels: int) -> None:
    """``train.metric`` must be one the Trainer can select on for this many labels."""
    if metric not in SELECTABLE_METRICS or (metric in BINARY_METRICS and num_labels != 2):
        raise ConfigError(
            f"train.metric '{metric}' is not available here.",
            f"Choose one of: {', '.join(m for m in SELECTABLE_METRICS if m not in BINARY_METRICS)}.",
        )


def evaluate_splits(
    predict: LogitsFunction, data: PreparedData
) -> tuple[dict[str, Any], list[dict[str, Any]], str | None]:
    """Metrics of the validation and (labelled) test splits, the prediction rows of the last one evaluated (test
    when present) and its name."""
    metrics: dict[str, Any] = {}
    predictions: list[dict[str, Any]] = []
    evaluated: str | None = None
    for split, frame in (("validation", data.validation), ("test", data.test)):
        if frame is None:
            continue
        metrics[split], predictions = score_frame(predict, frame, data.labels.names)
        evaluated = split
    return metrics, predictions, evaluated


def finish_run(
    run_dir: Path, config: Config, final: dict[str, Any], predictions: list[dict[str, Any]], history: list[dict]
) -> Run:
    """Write the evaluated split's predictions, ``metrics.json`` and the plots; the run is then complete."""
    runs.write_jsonl(run_dir / runs.PREDICTIONS_FILE, predictions)
    runs.write_json(run_dir / runs.METRICS_FILE, final)
    plot_run(run_dir)
    logger.info("Saved the best model to %s", run_dir / runs.MODEL_DIR)
    return Run(dir=run_dir, config=config, metrics=final, history=history)


__all__ = ["Run", "check_metric", "evaluate_splits", "finish_run"]
