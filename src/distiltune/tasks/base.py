"""The task seam: what depends on the kind of classification task, behind one interface, and the registry that picks
a run's task.

A :class:`Task` owns everything between a model's logits and what a run reports or a predictor answers: the
``problem_type`` of the transformers config, the training loss, logits -> probabilities (with the run's
temperature) -> decisions (argmax, or a tuned threshold), the metric set and the Trainer's ``compute_metrics``, how
calibration is fitted on the validation split and applied, the ``predictions.jsonl`` row, the answer of
``Classifier.predict`` and the label order of the server. Training, inference, export and the server call the task
and apply no softmax or argmax of their own (one exception: the Trainer subclass counts correct argmax predictions of
single-label batches on the device for the running training accuracy, and counts nothing for other label shapes).

Single-label classification (one label per text or text pair, softmax) is :mod:`.single_label`. A new kind of task
is one module that subclasses :class:`Task` and registers an instance with :func:`register_task`, plus its tests;
:func:`task_for` is the one place that maps a run's config to its task, and :func:`task_of_model` the one place that
maps a saved model (``model/labels.json``) back to it.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar

import numpy as np

from distiltune.tasks.metrics import ToDocuments

if TYPE_CHECKING:
    import torch

SINGLE_LABEL = "single_label"
"""One label per input, chosen by softmax: every run so far."""
MULTI_LABEL = "multi_label"
"""Any number of labels per input, each decided by its own sigmoid and threshold."""


class TaskCalibration(Protocol):
    """What every task's calibration (``model/calibration.json``) offers its callers."""

    @property
    def temperature(self) -> float: ...

    @property
    def is_identity(self) -> bool: ...

    def to_dict(self) -> dict[str, Any]: ...


CalibrationT = TypeVar("CalibrationT", bound=TaskCalibration)


class Task(ABC, Generic[CalibrationT]):
    """A kind of classification task, with the type of its calibration. Instances are stateless: one per kind,
    shared (:func:`get_task`)."""

    name: ClassVar[str]
    """The registry key, and metrics.json's ``task`` for every kind but single-label."""
    problem_type: ClassVar[str]
    """``PretrainedConfig.problem_type``: which loss a transformers model computes for itself."""
    selectable_metrics: ClassVar[tuple[str, ...]]
    """Metrics that can pick the best checkpoint (``train.metric``); all higher-is-better except ``loss``."""
    default_metric: ClassVar[str]
    """``train.metric`` when the config leaves it unset."""
    headline_metrics: ClassVar[tuple[str, ...]]
    """A split's metrics the CLI shows, in order (each only where some split has it)."""
    progress_metrics: ClassVar[tuple[str, ...]]
    """The two metrics of the progress table printed at every evaluation during training."""

    # --- settings, checked before anything trains ----------------------------------------------------------

    @abstractmethod
    def check_metric(self, metric: str, num_labels: int) -> None:
        """Raise a one-line ConfigError unless ``train.metric`` can select checkpoints for this many labels."""

    @abstractmethod
    def check_calibration_settings(self, num_labels: int, tune_threshold: bool) -> None:
        """Raise a one-line ConfigError for calibration settings the task cannot fit for this many labels."""

    # --- training ------------------------------------------------------------------------------------------

    @abstractmethod
    def check_loss(self, kind: str, gamma: float) -> None:
        """Raise a one-line ConfigError for a ``train.loss`` / ``train.focal_gamma`` the task cannot train with."""

    @abstractmethod
    def loss(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        weights: Sequence[float] | torch.Tensor | None = None,
        kind: str = "cross_entropy",
        gamma: float = 2.0,
        reduction: Literal["mean", "sum", "none"] = "mean",
    ) -> torch.Tensor:
        """The training loss of ``logits`` against ``labels``: ``kind`` (``train.loss``) with per-label
        ``weights`` (``train.class_weights``) and the focal ``gamma``; rows labelled -100 count for nothing."""

    @abstractmethod
    def label_counts(self, labels: Any, num_labels: int) -> list[int]:
        """Training rows carrying each label id (the dataset summary, ``balanced`` weights, the imbalance
        warning)."""

    @abstractmethod
    def balanced_weights(self, labels: Any, num_labels: int) -> list[float]:
        """The per-label loss weights of ``train.class_weights: balanced`` for these training labels."""

    @abstractmethod
    def compute_metrics(
        self, label_names: list[str], to_documents: ToDocuments | None = None
    ) -> Callable[[Any], dict[str, float]]:
        """The Trainer's ``compute_metrics``: flat scalar metrics of an evaluation (``to_documents`` scores the
        documents of a split read in windows)."""

    # --- logits -> probabilities -> decisions --------------------------------------------------------------

    @abstractmethod
    def identity_calibration(self) -> CalibrationT:
        """The calibration of a run that fitted none (no ``model/calibration.json``)."""

    @abstractmethod
    def read_calibration(self, raw: dict[str, Any], label_names: list[str], source: str) -> CalibrationT:
        """A saved ``calibration.json`` object; an invalid one raises a RunError naming ``source``."""

    @abstractmethod
    def probabilities(self, logits: Any, calibration: CalibrationT | None = None) -> np.ndarray:
        """Scores ``[n, num_labels]`` from raw logits under ``calibration`` (None: the identity)."""

    @abstractmethod
    def decide(self, probabilities: Any, calibration: CalibrationT | None = None) -> np.ndarray:
        """Decisions for rows of :meth:`probabilities` under ``calibration`` (None: the identity)."""

    def predict(self, logits: Any, calibration: CalibrationT | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities, decisions)`` of raw logits."""
        probabilities = self.probabilities(logits, calibration)
        return probabilities, self.decide(probabilities, calibration)

    @abstractmethod
    def agreement(self, decisions: np.ndarray, other: np.ndarray) -> np.ndarray:
        """Per row, whether two sets of decisions (or decisions and gold labels) agree on the whole row."""

    @abstractmethod
    def nll(self, probabilities: np.ndarray, labels: Any, num_labels: int) -> float:
        """Mean negative log-likelihood of a split's gold labels under ``probabilities`` (its reported ``loss``)."""

    @abstractmethod
    def gold(self, labels: Any, num_labels: int) -> np.ndarray:
        """A split's gold labels (a frame's ``label`` column) in the form of :meth:`decide`'s decisions."""

    # --- evaluation ----------------------------------------------------------------------------------------

    @abstractmethod
    def fit_calibration(
        self,
        validation_logits: np.ndarray,
        validation_labels: np.ndarray,
        train_labels: np.ndarray,
        label_names: list[str],
        temperature: bool,
        threshold_metric: str | None,
    ) -> tuple[CalibrationT, dict[str, Any]]:
        """Fit on the validation split what the run asks for: a temperature (``train.calibrate: temperature``),
        then a decision threshold maximising ``threshold_metric`` (``train.tune_threshold``; None: no threshold).
        Returns the calibration and metrics.json's reports of the fits, by name (``temperature``, ``threshold``)."""

    @abstractmethod
    def score(
        self,
        logits: np.ndarray,
        gold: np.ndarray,
        label_names: list[str],
        seconds: float,
        texts: Sequence[str],
        pairs: Sequence[str] | None,
        calibration: CalibrationT | None = None,
        fitted: Sequence[str] = (),
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A labelled split predicted in ``seconds``: its metrics (a :class:`~distiltune.tasks.record.SplitMetrics`
        object) and its ``predictions.jsonl`` rows, under ``calibration``. ``fitted`` names the calibration fits
        whose effect the metrics also report (``before_calibration``, ``before_threshold``)."""

    # --- what a predictor answers --------------------------------------------------------------------------

    @abstractmethod
    def prediction_results(
        self,
        probabilities: np.ndarray,
        label_names: list[str],
        calibration: CalibrationT | None = None,
        top_k: int = 1,
    ) -> list[dict[str, Any]]:
        """``Classifier.predict``'s answer per row of :meth:`probabilities`."""

    @abstractmethod
    def ranked_labels(
        self, scores: np.ndarray, calibration: CalibrationT | None = None, raw: bool = False
    ) -> list[int]:
        """The server's label order for one row of scores (probabilities, or logits when ``raw``): the decided
        label(s) first."""

    def selected(
        self, scores: np.ndarray, calibration: CalibrationT | None = None, raw: bool = False
    ) -> list[bool] | None:
        """For the server's answer: which labels of one row of scores (probabilities, or logits when ``raw``) the
        decision selects, marked per label; None where one label per input is the answer (the first listed)."""
        return None

    @abstractmethod
    def info(self, calibration: CalibrationT | None = None) -> dict[str, Any]:
        """The task's facts in the server's ``/info``."""


def evaluation_arrays(eval_prediction: Any, to_documents: ToDocuments | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The logits and gold labels of a Trainer evaluation (``EvalPrediction``), per document when the split was read
    in windows (``to_documents``): what every task's ``compute_metrics`` scores."""
    logits = eval_prediction.predictions
    if isinstance(logits, tuple):
        logits = logits[0]
    labels = eval_prediction.label_ids
    if to_documents is not None:
        logits, labels = to_documents(np.asarray(logits), np.asarray(labels))
    return np.asarray(logits), np.asarray(labels)


# --- the registry --------------------------------------------------------------------------------------------

#: Modules that define the built-in tasks, imported on first lookup (each registers its task).
_BUILT_IN = {SINGLE_LABEL: "distiltune.tasks.single_label", MULTI_LABEL: "distiltune.tasks.multi_label"}
_TASKS: dict[str, Task[Any]] = {}
TaskT = TypeVar("TaskT", bound=Task[Any])


def register_task(task: TaskT) -> TaskT:
    """Make ``task`` available under its name (a module defining a task calls this at import)."""
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task[Any]:
    """The task registered as ``name``."""
    if name not in _TASKS and name in _BUILT_IN:
        importlib.import_module(_BUILT_IN[name])
    if name not in _TASKS:
        raise ValueError(f"unknown task '{name}'; known: {', '.join(sorted(set(_BUILT_IN) | set(_TASKS)))}")
    return _TASKS[name]


def task_for(config: Any = None) -> Task[Any]:
    """The task of a run with this config (a :class:`distiltune.config.Config`): the one place that chooses it.
    Multi-label when ``data.multi_label`` says so (the data loader resolves an unset value from the data), else
    single-label."""
    data = getattr(config, "data", None)
    # a Config (its data section), or the data itself (PreparedData: its resolved data config)
    multi_label = getattr(data, "multi_label", None) if data is not None else None
    if multi_label is None:
        multi_label = getattr(getattr(config, "config", None), "multi_label", None)
    return get_task(MULTI_LABEL if multi_label else SINGLE_LABEL)


def task_of_model(info: dict[str, Any]) -> Task[Any]:
    """The task of a saved model from its ``model/labels.json``: its ``task`` entry (absent: single-label, as every
    run written before multi-label)."""
    return get_task(str(info.get("task") or SINGLE_LABEL))


__all__ = [
    "MULTI_LABEL",
    "SINGLE_LABEL",
    "Task",
    "TaskCalibration",
    "evaluation_arrays",
    "get_task",
    "register_task",
    "task_for",
    "task_of_model",
]
