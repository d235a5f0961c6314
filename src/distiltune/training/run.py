"""What every finished run shares, whatever trained it: the :class:`Run` handle, the calibration fitted after
training (temperature, decision threshold), the evaluation of its splits, and the final files
(``model/calibration.json``, ``predictions.jsonl``, ``metrics.json``, plots)."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distiltune import runs
from distiltune.config import Config, TrainConfig
from distiltune.data import PreparedData
from distiltune.errors import ConfigError, DataError
from distiltune.inference.classifier import Classifier
from distiltune.inference.scoring import (
    LogitsFunction,
    apply_calibration,
    calibration_or_none,
    frame_inputs,
    score_logits,
)
from distiltune.plots import plot_run
from distiltune.tasks.calibration import (
    TEMPERATURE_BOUNDS,
    Calibration,
    fit_temperature_details,
    require_binary,
    tune_threshold,
)
from distiltune.tasks.metrics import SELECTABLE_METRICS, classification_metrics

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
        """The trained model as a :class:`~distiltune.inference.Classifier`."""
        return Classifier.load(self.dir, **kwargs)


def check_metric(metric: str, num_labels: int) -> None:
    """``train.metric`` must be one the Trainer can select on for this many labels."""
    if metric not in SELECTABLE_METRICS or (metric in BINARY_METRICS and num_labels != 2):
        raise ConfigError(
            f"train.metric '{metric}' is not available here.",
            f"Choose one of: {', '.join(m for m in SELECTABLE_METRICS if m not in BINARY_METRICS)}.",
        )


def check_calibration_settings(train: TrainConfig, num_labels: int) -> None:
    """Refuse, before anything trains, what the calibration steps cannot do: a decision threshold on a task without
    exactly two labels (one-line ConfigError)."""
    if train.tune_threshold:
        require_binary(num_labels, "train.tune_threshold (--tune-threshold)")


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
    calibration: Calibration
    fits: dict[str, Any]
    """metrics.json's top-level ``temperature`` and ``threshold`` reports (only those the run fitted)."""

    def calibration_file(self) -> dict[str, Any] | None:
        """``model/calibration.json`` (None when the run fitted nothing: no file, the identity)."""
        if not self.fits:
            return None
        return {
            **self.calibration.to_dict(),
            "fitted_on": "validation",
            **{f"{name}_fit": report for name, report in self.fits.items()},
        }


def evaluate_splits(predict: LogitsFunction, data: PreparedData, train: TrainConfig | None = None) -> Evaluation:
    """Predict the validation and (labelled) test splits once each, fit what ``train`` asks for on the validation
    logits (``calibrate: temperature`` first, then ``tune_threshold`` on the scaled probabilities), and score both
    splits under the result."""
    train = train or TrainConfig()
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
    calibration, fits = fit_calibration(logits.get("validation"), data, train)
    metrics: dict[str, Any] = {}
    predictions: list[dict[str, Any]] = []
    evaluated: str | None = None
    for split, frame in frames.items():
        metrics[split], predictions = score_logits(logits[split], seconds[split], frame, names, calibration)
        gold = frame["label"].to_numpy()
        if "temperature" in fits:
            metrics[split]["before_calibration"] = _before_calibration(logits[split], gold, names)
        if "threshold" in fits:
            metrics[split]["before_threshold"] = _before_threshold(logits[split], gold, names, calibration)
        evaluated = split
    return Evaluation(metrics, predictions, evaluated, calibration, fits)


def fit_calibration(
    validation_logits: np.ndarray | None, data: PreparedData, train: TrainConfig
) -> tuple[Calibration, dict[str, Any]]:
    """The temperature (``train.calibrate``) and decision threshold (``train.tune_threshold``) fitted on the
    validation split's logits, and their reports; the identity and {} when the run asks for neither."""
    calibration = Calibration()
    fits: dict[str, Any] = {}
    if train.calibrate == "none" and not train.tune_threshold:
        return calibration, fits
    if validation_logits is None or len(validation_logits) == 0:
        raise DataError(
            "train.calibrate / train.tune_threshold fit on the validation split, which is empty.",
            "Give the run validation rows (data.validation_split or data.validation_fraction).",
        )
    labels = data.validation["label"].to_numpy().astype(np.int64)
    names = data.labels.names
    if train.calibrate == "temperature":
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
    if train.tune_threshold:
        require_binary(len(names), "train.tune_threshold (--tune-threshold)")
        counts = np.bincount(data.train["label"].to_numpy().astype(np.int64), minlength=2)
        minority = int(np.argmin(counts))  # ties: the first label
        probabilities = calibration.probabilities(validation_logits)  # tuned after the temperature, as applied
        threshold = tune_threshold(probabilities, labels, minority, train.threshold_metric)
        calibration = dataclasses.replace(calibration, threshold=threshold, threshold_label_id=minority)
        tuned = _threshold_score(labels, calibration.labels(probabilities), names, train.threshold_metric, minority)
        argmax = _threshold_score(labels, probabilities.argmax(axis=-1), names, train.threshold_metric, minority)
        fits["threshold"] = {
            "value": threshold,
            "label": names[minority],
            "label_id": minority,
            "metric": train.threshold_metric,
            "validation_score": tuned,
            "validation_score_argmax": argmax,
        }
        logger.info(
            "Decision threshold %.4f on P(%s) (validation %s %.4f, argmax %.4f).",
            threshold,
            names[minority],
            train.threshold_metric,
            tuned,
            argmax,
        )
    return calibration, fits


def _threshold_score(labels: np.ndarray, predicted: np.ndarray, names: list[str], metric: str, label_id: int) -> float:
    scores = classification_metrics(labels, predicted, names)
    if metric == "f1":
        return scores["per_class"][names[label_id]]["f1"]
    return {"f1_macro": scores["f1_macro"], "balanced_accuracy": scores["recall_macro"]}.get(
        metric, scores["accuracy"]
    )


def _before_calibration(logits: np.ndarray, gold: np.ndarray, names: list[str]) -> dict[str, Any]:
    """The same model at T = 1 (argmax labels): what the temperature changed."""
    probabilities, predicted = apply_calibration(logits, Calibration())
    report = calibration_or_none(probabilities, gold) or {}
    return {"accuracy": classification_metrics(gold, predicted, names)["accuracy"], **report}


def _before_threshold(
    logits: np.ndarray, gold: np.ndarray, names: list[str], calibration: Calibration
) -> dict[str, Any]:
    """The calibrated probabilities' argmax labels: what the decision threshold changed."""
    probabilities = calibration.probabilities(logits)
    scores = classification_metrics(gold, probabilities.argmax(axis=-1), names)
    keys = ("accuracy", "f1_macro", "precision", "recall", "f1", "per_class")
    return {key: scores[key] for key in keys if key in scores}


def write_calibration(model_dir: Path, evaluation: Evaluation) -> None:
    """``model/calibration.json`` when the run fitted a temperature or a threshold (predictors read it)."""
    content = evaluation.calibration_file()
    if content is not None:
        runs.write_json(model_dir / runs.CALIBRATION_FILE, content)


def finish_run(
    run_dir: Path, config: Config, final: dict[str, Any], predictions: list[dict[str, Any]], history: list[dict]
) -> Run:
    """Write the evaluated split's predictions, ``metrics.json`` and the plots; the run is then complete."""
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
    "write_calibration",
]
