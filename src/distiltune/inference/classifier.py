"""Load a finished run and predict: ``distiltune.load(run_dir).predict(texts, top_k=...)``.

A :class:`Classifier` serves any run directory. What runs the model is an inference backend
(:mod:`distiltune.inference.backends`): the PyTorch model (``backend="torch"``) or its ONNX export
(``backend="onnx"``) through the batched inference path, or a method's own predictor (TF-IDF's:
``Method.load_predictor``).
Whatever the predictor, the run's long-text reading (``data.long_text``, inside the batched path) and its
calibration (``model/calibration.json``: temperature, decision threshold) apply the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distiltune import runs
from distiltune.config import Config
from distiltune.data.columns import LabelSpace
from distiltune.data.long_text import LongTextOptions
from distiltune.errors import RunError
from distiltune.inference.backends import SavedRun, backend_for
from distiltune.inference.batched import InferenceBatching, InferenceSettings, predict_logits
from distiltune.inference.scoring import score_frame
from distiltune.methods import METHODS, Method, Predictor, get_method
from distiltune.tasks.base import MULTI_LABEL, SINGLE_LABEL, Task, TaskCalibration, get_task, task_of_model
from distiltune.tasks.calibration import Calibration

logger = logging.getLogger("distiltune")
#: Files every encoder run's ``model/`` holds besides its method's own (``Method.required_files``).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json")


@dataclass
class Classifier:
    """A trained model with its tokenizer, label names and the settings it was trained with."""

    model: Any
    """The PyTorch module or ONNX session of an encoder run; for a method without an encoder, its predictor."""
    tokenizer: Any
    """None for a method without an encoder."""
    config: Config
    labels: LabelSpace
    max_length: int
    is_pair: bool
    device: Any
    precision: str
    run_dir: Path | None = None
    backend: str = "torch"
    method: str = "full"
    calibration: TaskCalibration = Calibration()
    """The temperature and decision threshold the run fitted (``model/calibration.json``, read by the task); none:
    the identity."""
    task: Task[Any] = dataclasses.field(default_factory=lambda: get_task(SINGLE_LABEL))
    """The kind of task the run trained (``model/labels.json``): how logits become probabilities, decisions and
    answers."""
    dtype: str = "float32"
    """The number format the model computes in, as TEI's ``/info`` names it (the backend's
    :attr:`~distiltune.inference.backends.LoadedModel.dtype`)."""

    @classmethod
    def load(
        cls,
        run_dir: str | Path,
        device: str = "auto",
        precision: str = "auto",
        backend: str = "torch",
        export_dir: str | Path | None = None,
    ) -> Classifier:
        """Load a run with an inference ``backend`` (:mod:`distiltune.inference.backends`): ``torch`` (default),
        or ``onnx``, which serves its ONNX export (int8 when present, else fp32; or ``export_dir``) with ONNX
        Runtime. A method with its own predictor (TF-IDF) always predicts with it. The run's calibration comes from
        ``model/calibration.json``, for ONNX from the export's copy of it."""
        run_dir = Path(run_dir)
        model_dir = check_run_dir(run_dir)
        config = Config.from_yaml(run_dir / runs.CONFIG_FILE)
        info = runs.read_model_info(model_dir)
        names = runs.label_names(info)
        task = task_of_model(info)
        method = get_method(str(info.get("method") or config.method.name))
        saved = SavedRun(run_dir, model_dir, config, info, method, names)
        chosen = backend_for(saved, backend)
        loaded = chosen.load(saved, device, precision, Path(export_dir) if export_dir is not None else None)
        return cls(
            model=loaded.model,
            tokenizer=loaded.tokenizer,
            config=config,
            labels=LabelSpace(names=names, values=names, multi_label=task.name == MULTI_LABEL),
            max_length=int(info.get("max_length") or 0),
            is_pair=bool(info.get("is_pair")),
            device=loaded.device,
            precision=loaded.precision,
            run_dir=run_dir,
            backend=backend,
            method=method.name,
            calibration=read_calibration(loaded.calibration_dir, names, task),
            task=task,
            dtype=loaded.dtype,
        )

    @property
    def uses_encoder(self) -> bool:
        return self.tokenizer is not None

    def inference_settings(self, batch_size: int | None = None, backend: str | None = None) -> InferenceSettings:
        """How inputs are batched: ``batch_size`` when given, else the config's ``train.eval_batch_size`` /
        ``train.eval_batch_tokens``, else the device and backend defaults (a token budget on CPU). ``backend``
        defaults to this classifier's; the export's parity check asks for ONNX's from the PyTorch classifier."""
        return InferenceSettings.for_run(
            self.max_length,
            self.config.train,
            self.device,
            self.precision,
            backend or self.backend,
            batch_size,
            self.long_text,
        )

    @property
    def long_text(self) -> LongTextOptions:
        """How the run reads texts longer than its max length (``data.long_text``; head for older runs)."""
        return self.config.data.long_text_options()

    def batching(self, batch_size: int | None = None, backend: str | None = None) -> InferenceBatching:
        """The row cap and padded-token budget of :meth:`inference_settings`."""
        settings = self.inference_settings(batch_size, backend)
        return InferenceBatching(batch_size=settings.batch_size, max_batch_tokens=settings.max_batch_tokens)

    @property
    def label_names(self) -> list[str]:
        return self.labels.names

    def predict_logits(
        self,
        texts: str | Sequence[str],
        pairs: str | Sequence[str] | None = None,
        batch_size: int | None = None,
        truncation_side: str | None = None,
    ) -> np.ndarray:
        """Raw scores ``[n, num_labels]`` in input order, before the temperature and the softmax; one row per input
        also when the run reads long texts in windows (``data.long_text=chunks``: the windows' logits aggregated).

        ``truncation_side`` overrides which end of an input longer than ``max_length`` is cut: "right" keeps its
        beginning, "left" its end. Unset (the default), inputs are read as the run was trained
        (``data.long_text``: head, tail, head_tail or chunks). A chunks run reads the whole input and a method
        without an encoder whole texts: both ignore it."""
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(pairs, str):
            pairs = [pairs]
        texts = list(texts)
        pairs = list(pairs) if pairs is not None else None
        if not self.uses_encoder:
            return np.asarray(self.model.predict_logits(texts, pairs))
        settings = self.inference_settings(batch_size)
        if truncation_side is not None and settings.long_text.mode != "chunks":
            # An explicit side is the plain tokenizer cut at that end, whatever the run's own reading.
            settings = dataclasses.replace(settings, long_text=LongTextOptions(), truncation_side=truncation_side)
        return predict_logits(self.model, self.tokenizer, texts, pairs, settings)

    def predict_proba(
        self,
        texts: str | Sequence[str],
        pairs: str | Sequence[str] | None = None,
        batch_size: int | None = None,
        truncation_side: str | None = None,
    ) -> np.ndarray:
        """Probabilities ``[n, num_labels]`` in input order, with the run's temperature applied."""
        return self.task.probabilities(
            self.predict_logits(texts, pairs, batch_size, truncation_side), self.calibration
        )

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """Label ids for rows of :meth:`predict_proba`: the run's decision threshold when it tuned one, else the
        most probable label."""
        return self.task.decide(probabilities, self.calibration)

    def predict(
        self,
        texts: str | Sequence[str],
        pairs: str | Sequence[str] | None = None,
        top_k: int = 1,
        batch_size: int | None = None,
    ) -> list[dict[str, Any]]:
        """For each input: ``{"label": predicted, "score": its p, "scores": [{"label", "score"}, ... top_k]}``,
        scores highest first.

        A run with a tuned decision threshold predicts its thresholded label, which may not be the most probable
        one: each row then lists every label's score and adds ``"threshold": {"label", "value"}``, the label whose
        probability is compared with the threshold."""
        probabilities = self.predict_proba(texts, pairs, batch_size)
        return self.task.prediction_results(probabilities, self.label_names, self.calibration, top_k)

    def evaluate_frame(self, frame: pd.DataFrame) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Metrics and ``predictions.jsonl`` rows for a labelled frame (text[, text_pair], label ids), under the
        run's calibration."""
        return score_frame(self.predict_logits, frame, self.label_names, self.calibration, self.task)


def load(run_dir: str | Path, **kwargs: Any) -> Classifier:
    """Load a finished run for prediction."""
    return Classifier.load(run_dir, **kwargs)


def read_calibration(folder: Path, label_names: list[str], task: Task[Any] | None = None) -> TaskCalibration:
    """The calibration saved in ``folder`` (a run's ``model/`` or an ONNX export), read by the run's ``task``
    (default: single-label); the identity when it has none, as for every run trained without ``train.calibrate`` /
    ``train.tune_threshold``."""
    task = task or get_task(SINGLE_LABEL)
    path = folder / runs.CALIBRATION_FILE
    if not path.is_file():
        return task.identity_calibration()
    try:
        raw = runs.read_json(path)
    except ValueError as err:
        raise RunError(f"{path} is not valid JSON ({err}).", "Train the run again.") from None
    if not isinstance(raw, dict):
        raise RunError(f"{path}: expected a JSON object.", "Train the run again.")
    return task.read_calibration(raw, label_names, str(path))


def check_run_dir(run_dir: Path) -> Path:
    """Fail with a clear message unless the run has a config, a label map and every file its method saves."""
    if not run_dir.is_dir():
        raise RunError(f"Run directory not found: {run_dir}.", "Pass a folder created by distiltune train.")
    model_dir = run_dir / runs.MODEL_DIR
    if not (run_dir / runs.CONFIG_FILE).is_file() or not model_dir.is_dir():
        hint = "It may still be running, or it failed before saving a model."
        record = runs.read_status(run_dir)
        if record is not None:
            hint = f"Its {runs.STATUS_FILE} says: {record.get('status', 'unknown')}."
            if record.get("resume"):
                hint += f" Finish it with: {record['resume']}"
        raise RunError(f"{run_dir} holds no finished model (config.yaml and model/ are required).", hint)
    if not (model_dir / runs.LABELS_FILE).is_file():
        raise RunError(
            f"{model_dir} is incomplete: missing {runs.LABELS_FILE}.",
            "Retrain, or copy the files back from a checkpoint.",
        )
    method = _saved_method(model_dir)
    missing: list[str] = []
    if method is None or method.trains_with_trainer:
        missing += [name for name in ("config.json",) if not (model_dir / name).is_file()]
        if not any(model_dir.glob("*.safetensors")):
            missing.append("*.safetensors weights")
        if not any((model_dir / name).is_file() for name in TOKENIZER_FILES):
            missing.append("tokenizer files")
    if method is not None:
        missing += [name for name in method.required_files if not (model_dir / name).is_file()]
    if missing:
        raise RunError(
            f"{model_dir} is incomplete: missing {', '.join(missing)}.",
            "Retrain, or copy the files back from a checkpoint.",
        )
    _check_consistency(model_dir)
    return model_dir


def _saved_method(model_dir: Path) -> Method | None:
    """The method that saved ``model/`` (None when labels.json is unreadable or names an unknown method)."""
    try:
        name = str(runs.read_model_info(model_dir).get("method", "full"))
    except (ValueError, OSError, AttributeError):
        return None
    return METHODS.get(name)


def _check_consistency(model_dir: Path) -> None:
    """Before loading anything heavy: the label map, model config and weight files agree and are whole."""
    from safetensors import safe_open

    broken = "The run directory is damaged; retrain, or restore model/ from a copy."
    try:
        labels = runs.read_model_info(model_dir)
        id2label = labels["id2label"]
        model_config = runs.read_json(model_dir / "config.json") if (model_dir / "config.json").is_file() else {}
    except (ValueError, KeyError, TypeError) as err:
        raise RunError(f"{model_dir}: labels.json or config.json is not valid ({err}).", broken) from None
    model_labels = model_config.get("id2label")
    if isinstance(model_labels, dict) and len(model_labels) != len(id2label):
        raise RunError(
            f"{model_dir}: labels.json has {len(id2label)} labels but model/config.json has {len(model_labels)}.",
            broken,
        )
    for weights in sorted(model_dir.glob("*.safetensors")):
        try:
            # Opening reads the header and checks it against the file size: a truncated copy fails here.
            with safe_open(str(weights), framework="pt") as handle:
                handle.keys()
        except Exception as err:  # safetensors raises its own error types for damaged files
            raise RunError(f"{weights} is damaged ({' '.join(str(err).split())[:120]}).", broken) from None


__all__ = ["Classifier", "Predictor", "check_run_dir", "load", "read_calibration"]
