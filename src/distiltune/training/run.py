"""What every finished run shares, whatever trained it: the :class:`Run` handle, the calibration fitted after
training (temperature, decision threshold), the evaluation of its splits, and the final files
(``model/calibration.json``, ``predictions.jsonl``, ``metrics.json``, plots)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distiltune import runs
from distiltune.config import Config, TrainConfig
from distiltune.data import PreparedData
from distiltune.errors import DataError
from distiltune.inference.classifier import Classifier
from distiltune.inference.scoring import LogitsFunction, frame_inputs, score_logits
from distiltune.plots import plot_run
from distiltune.tasks.base import SINGLE_LABEL, Task, TaskCalibration, task_for
from distiltune.tasks.record import RunMetrics

logger = logging.getLogger("distiltune")


@dataclass
class Run:
    """A finished run: its directory, resolved config and final metrics."""

    dir: Path
    config: Config
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)

    def load(self, **kwargs: Any) -> Any:
        """The trained model as a :class:`~distiltune.inference.Classifier`."""
        return Classifier.load(self.dir, **kwargs)

    @property
    def record(self) -> RunMetrics:
        """:attr:`metrics` as the typed metrics.json record."""
        return RunMetrics.from_dict(self.metrics, source=str(self.dir / runs.METRICS_FILE))


def check_metric(metric: str, num_labels: int, task: Task[Any] | None = None) -> None:
    """``train.metric`` must be one the Trainer can select on for this many labels (the run's ``task`` says which)."""
    (task or task_for()).check_metric(metric, num_labels)


def check_calibration_settings(train: TrainConfig, num_labels: int, task: Task[Any] | None = None) -> None:
    """Refuse, before anything trains, what the calibration steps cannot do: for single-label, a decision threshold
    on a task without exactly two labels (one-line ConfigError)."""
    (task or task_for()).check_calibration_settings(num_labels, train.tune_threshold)


@dataclass
class Evaluation:
    """The final evaluation of a run: what ``metrics.json`` gets, the evaluated split's prediction rows and the
    calibration the run fitted (the identity when it fitted none)."""

    splits: dict[str, Any]
    """Per split (validation, test): metrics under the calibration, with ``before_calibration`` /
    ``before_threshold`` when the run fitted a temperature / a threshold."""
    predictions: list[dict[str, Any]]
    evaluated: str | None
    """The split whose rows ``predictions`` holds: test when labelled, else validation."""
    calibration: TaskCalibration
    fits: dict[str, Any]
    """metrics.json's top-level ``temperature`` and ``threshold`` reports (only those the run fitted)."""
    task: Task[Any] = field(default_factory=task_for)
    """The task that scored the splits."""

    def calibration_file(self) -> dict[str, Any] | None:
        """``model/calibration.json`` (None when the run fitted nothing: no file, the identity)."""
        if not self.fits:
            return None
        return {
            **self.calibration.to_dict(),
            "fitted_on": "validation",
            **{f"{name}_fit": report for name, report in self.fits.items()},
        }


def evaluate_splits(
    predict: LogitsFunction, data: PreparedData, train: TrainConfig | None = None, task: Task[Any] | None = None
) -> Evaluation:
    """Predict the validation and (labelled) test splits once each, fit what ``train`` asks for on the validation
    logits (``calibrate: temperature`` first, then ``tune_threshold`` on the scaled probabilities), and score both
    splits under the result, as the run's ``task`` does each step."""
    train = train or TrainConfig()
    task = task or task_for()
    names = data.labels.names
    frames = {
        split: frame for split, frame in (("validation", data.validation), ("test", data.test)) if frame is not None
    }
    logits: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for split, frame in frames.items():
        texts, pairs = frame_inputs(frame)
        started = time.perf_counter()
        logits[split] = np.asarray(predict(texts, pairs))
        seconds[split] = time.perf_counter() - started
    calibration, fits = fit_calibration(logits.get("validation"), data, train, task)
    metrics: dict[str, Any] = {}
    predictions: list[dict[str, Any]] = []
    evaluated: str | None = None
    for split, frame in frames.items():
        metrics[split], predictions = score_logits(
            logits[split], seconds[split], frame, names, calibration, task, fitted=tuple(fits)
        )
        evaluated = split
    return Evaluation(metrics, predictions, evaluated, calibration, fits, task)


def fit_calibration(
    validation_logits: np.ndarray | None, data: PreparedData, train: TrainConfig, task: Task[Any] | None = None
) -> tuple[TaskCalibration, dict[str, Any]]:
    """The temperature (``train.calibrate``) and decision threshold (``train.tune_threshold``) the run's ``task``
    fits on the validation split's logits, and their reports; the identity and {} when the run asks for neither."""
    task = task or task_for()
    if train.calibrate == "none" and not train.tune_threshold:
        return task.identity_calibration(), {}
    if validation_logits is None or len(validation_logits) == 0:
        raise DataError(
            "train.calibrate / train.tune_threshold fit on the validation split, which is empty.",
            "Give the run validation rows (data.validation_split or data.validation_fraction).",
        )
    return task.fit_calibration(
        validation_logits,
        data.validation["label"].to_numpy(),
        data.train["label"].to_numpy(),
        data.labels.names,
        temperature=train.calibrate == "temperature",
        threshold_metric=train.threshold_metric if train.tune_threshold else None,
    )


def write_calibration(model_dir: Path, evaluation: Evaluation) -> None:
    """``model/calibration.json`` when the run fitted a temperature or a threshold (predictors read it)."""
    content = evaluation.calibration_file()
    if content is not None:
        runs.write_json(model_dir / runs.CALIBRATION_FILE, content)


def run_record(
    evaluation: Evaluation, *, method: str, model: str, dataset: str, metric_for_best: str | None, **facts: Any
) -> RunMetrics:
    """metrics.json of a run, for every trainer: its identity, ``evaluation``'s task, splits and calibration fits, and
    the training ``facts`` (:meth:`~distiltune.tasks.record.RunMetrics.build`'s keyword arguments). The task is
    written for every kind but single-label, whose runs have never named it."""
    return RunMetrics.build(
        method=method,
        model=model,
        dataset=dataset,
        metric_for_best=metric_for_best,
        task=None if evaluation.task.name == SINGLE_LABEL else evaluation.task.name,
        splits=evaluation.splits,
        predictions_split=evaluation.evaluated,
        fits=evaluation.fits,
        **facts,
    )


def finish_run(
    run_dir: Path, config: Config, record: RunMetrics, predictions: list[dict[str, Any]], history: list[dict]
) -> Run:
    """Write the evaluated split's predictions, ``metrics.json`` and the plots; the run is then complete."""
    final = record.to_json()
    runs.write_jsonl(run_dir / runs.PREDICTIONS_FILE, predictions)
    runs.write_json(run_dir / runs.METRICS_FILE, final)
    plot_run(run_dir)
    logger.info("Saved the best model to %s", run_dir / runs.MODEL_DIR)
    return Run(dir=run_dir, config=config, metrics=final, history=history)


__all__ = [
    "Evaluation",
    "Run",
    "check_calibration_settings",
    "check_metric",
    "evaluate_splits",
    "finish_run",
    "fit_calibration",
    "run_record",
    "write_calibration",
]
