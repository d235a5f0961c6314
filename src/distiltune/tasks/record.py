"""``metrics.json`` as a typed record: what a finished run reports, written by every trainer through
:meth:`RunMetrics.build` and read back by the CLI, the comparison, tuning and the plots through
:meth:`RunMetrics.read`.

The JSON keeps the shape runs have written since metrics.json existed (same keys, same order), so the files of
earlier versions parse, and a record read and written again is the same JSON. Fields a run did not write stay
absent (``exclude_unset``), not null: a run without a test split has no ``test`` key, as before.

Every model allows extra keys. At the top level they are the method's own facts (the TF-IDF baseline's
``tfidf_features``), written after the parameter counts and before the memory figures, where the trainers have
always put them. In a split they are the further metrics of a kind of task, after the ones declared here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_serializer

from distiltune import runs
from distiltune.errors import RunError


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")

    def to_json(self) -> dict[str, Any]:
        """The JSON object: the fields that were set, in the order of the file."""
        return self.model_dump(exclude_unset=True)


class ClassMetrics(_Record):
    """One label's row of the per-class table."""

    precision: float
    recall: float
    f1: float
    support: int
    """Gold rows of this label in the split."""


class ConfusionMatrix(_Record):
    labels: list[str]
    matrix: list[list[int]]
    """``matrix[gold][predicted]``: rows by gold label, columns by predicted label, in the order of ``labels``."""


class ReliabilityTable(_Record):
    """Top-label reliability in equal-width confidence bins (:func:`distiltune.tasks.calibration.reliability_bins`)."""

    edges: list[float]
    count: list[int]
    confidence: list[float]
    accuracy: list[float]


class CalibrationReport(_Record):
    """How well a split's probabilities are calibrated (:func:`distiltune.tasks.calibration.calibration_report`)."""

    bins: int
    ece: float
    """Expected calibration error (a fraction, lower is better)."""
    brier: float
    nll: float
    """Negative log-likelihood in nats per row."""
    reliability: ReliabilityTable


class SplitMetrics(_Record):
    """One evaluated split (``validation``, ``test``, or the data of ``distiltune evaluate``).

    Every field is optional: a task reports the metrics that mean something for it, and runs of earlier versions
    lack the later ones (``loss`` and ``calibration`` arrived with calibration)."""

    accuracy: float | None = None
    samples: int | None = None
    precision_macro: float | None = None
    recall_macro: float | None = None
    f1_macro: float | None = None
    precision_weighted: float | None = None
    recall_weighted: float | None = None
    f1_weighted: float | None = None
    precision: float | None = None
    """Binary tasks only: of the second label (id 1), as are ``recall`` and ``f1``."""
    recall: float | None = None
    f1: float | None = None
    per_class: dict[str, ClassMetrics] | None = None
    confusion_matrix: ConfusionMatrix | None = None
    eval_samples_per_second: float | None = None
    loss: float | None = None
    """Mean negative log-likelihood of the gold labels under the reported probabilities."""
    calibration: CalibrationReport | None = None
    """None for no rows or NaN scores (a diverged model still gets its other metrics)."""
    before_calibration: dict[str, Any] | None = None
    """With a fitted temperature: the accuracy and calibration of the same model at T = 1."""
    before_threshold: dict[str, Any] | None = None
    """With a tuned decision threshold: the headline metrics of the calibrated probabilities' argmax."""

    def value(self, name: str) -> float | None:
        """The number reported as ``name`` (a declared metric or a task's own), None when absent or not a number."""
        found = getattr(self, name, None) if name in type(self).model_fields else (self.model_extra or {}).get(name)
        return found if isinstance(found, int | float) and not isinstance(found, bool) else None


class TemperatureReport(_Record):
    """metrics.json's ``temperature``: the temperature fit (:class:`distiltune.tasks.calibration.TemperatureFit`)."""

    value: float
    """The temperature applied (1.0 when the fit was rejected)."""
    nll_before: float
    nll_after: float
    optimum: float
    accepted: bool
    at_bound: bool
    rows: int
    bounds: list[float]
    split: str


class ThresholdReport(_Record):
    """metrics.json's ``threshold``: the decision threshold tuned on the validation split."""

    value: float
    label: str
    """The label whose probability is compared with the threshold."""
    label_id: int
    metric: str
    validation_score: float
    validation_score_argmax: float


class LabelThresholdsReport(_Record):
    """metrics.json's ``threshold`` of a multi-label run: a decision threshold per label, tuned on the validation
    split (:class:`distiltune.tasks.multi_label.MultiLabelTask`)."""

    values: dict[str, float]
    """Each label's threshold (0.5 where the label was too rare on validation to tune)."""
    metric: str
    tuned_labels: int
    kept_default: list[str]
    """The labels that kept 0.5."""
    min_positives: int
    validation_f1_macro: float
    validation_f1_macro_at_default: float


#: The top-level fields the method's own facts (extra keys) are written before.
_AFTER_METHOD_FACTS = ("peak_memory_mb", "peak_memory_increase_mb", "peak_memory_kind", "device", "precision")


class RunMetrics(_Record):
    """A finished run's ``metrics.json``."""

    method: str | None = None
    model: str | None = None
    """The encoder (hub id or folder); a method without an encoder names itself (``tfidf``)."""
    dataset: str | None = None
    metric_for_best: str | None = None
    task: str | None = None
    """The kind of task (:func:`distiltune.tasks.base.get_task`); absent: single-label, as every run before it."""
    validation: SplitMetrics | None = None
    test: SplitMetrics | None = None
    predictions_split: str | None = None
    """The split whose rows ``predictions.jsonl`` holds."""
    temperature: TemperatureReport | None = None
    threshold: ThresholdReport | LabelThresholdsReport | None = None
    best_step: int | None = None
    best_epoch: float | None = None
    train_seconds: float | None = None
    train_samples_per_second: float | None = None
    train_rows: int | None = None
    train_windows: int | None = None
    """Training rows after splitting long texts into windows (``data.long_text=chunks`` only)."""
    data_fingerprint: dict[str, str | None] | None = None
    token_fingerprint: str | None = None
    trainable_params: int | None = None
    total_params: int | None = None
    trainable_percent: float | None = None
    peak_memory_mb: float | None = None
    peak_memory_increase_mb: float | None = None
    peak_memory_kind: str | None = None
    device: str | None = None
    precision: str | None = None

    @model_serializer(mode="wrap")
    def _method_facts_in_place(self, handler: Any) -> dict[str, Any]:
        dumped = handler(self)
        facts = {key: dumped.pop(key) for key in (self.model_extra or {}) if key in dumped}
        if not facts:
            return dumped
        ordered: dict[str, Any] = {}
        for key, value in dumped.items():
            if key in _AFTER_METHOD_FACTS and facts:
                ordered.update(facts)
                facts = {}
            ordered[key] = value
        ordered.update(facts)
        return ordered

    @classmethod
    def build(
        cls,
        *,
        method: str,
        model: str,
        dataset: str,
        metric_for_best: str | None,
        splits: Mapping[str, Mapping[str, Any]],
        predictions_split: str | None,
        fits: Mapping[str, Any],
        best_step: int | None,
        best_epoch: float | None,
        train_seconds: float,
        train_samples_per_second: float | None,
        train_rows: int,
        data_fingerprint: Mapping[str, str | None],
        method_facts: Mapping[str, Any],
        peak_memory: Mapping[str, Any],
        train_windows: int | None = None,
        token_fingerprint: str | None = None,
        task: str | None = None,
    ) -> RunMetrics:
        """The record every trainer writes: the run's identity, the evaluated ``splits`` (validation, test) and
        the calibration ``fits`` (``temperature``, ``threshold``: those the run fitted), the best checkpoint,
        training time and size, fingerprints, then ``method_facts`` (parameter counts, a method's own facts, its
        device and precision; a fact named like a field, such as TF-IDF's ``model``, sets that field) and
        ``peak_memory`` (:meth:`distiltune.training.memory.PeakMemory.as_dict`).

        ``train_windows``, ``token_fingerprint`` and ``task`` are written only when given."""
        raw: dict[str, Any] = {
            "method": method,
            "model": model,
            "dataset": dataset,
            "metric_for_best": metric_for_best,
            **({"task": task} if task is not None else {}),
            **splits,
            "predictions_split": predictions_split,
            **fits,
            "best_step": best_step,
            "best_epoch": best_epoch,
            "train_seconds": train_seconds,
            "train_samples_per_second": train_samples_per_second,
            "train_rows": train_rows,
            **({"train_windows": train_windows} if train_windows is not None else {}),
            "data_fingerprint": dict(data_fingerprint),
            **({"token_fingerprint": token_fingerprint} if token_fingerprint is not None else {}),
            **method_facts,
            **peak_memory,
        }
        return cls.model_validate(raw)

    @classmethod
    def from_dict(cls, raw: Any, source: str = runs.METRICS_FILE) -> RunMetrics:
        """Parse a metrics.json object; a malformed one raises a one-line RunError naming ``source``."""
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(top level)"
            raise RunError(
                f"{source}: {where}: {first['msg']} (got {first.get('input')!r:.60}).",
                "The run's metrics file is damaged; train the run again.",
            ) from None

    @classmethod
    def read(cls, path: Path) -> RunMetrics:
        """Read a run's metrics.json."""
        try:
            raw = runs.read_json(path)
        except ValueError as err:
            raise RunError(f"{path} is not valid JSON ({err}).", "Train the run again.") from None
        return cls.from_dict(raw, source=str(path))

    def splits(self) -> dict[str, SplitMetrics]:
        """The evaluated splits, validation first."""
        return {name: split for name, split in (("validation", self.validation), ("test", self.test)) if split}

    @property
    def evaluated_split(self) -> str:
        """Test when the run had labelled test data, else validation (the split of its predictions.jsonl)."""
        return "test" if self.test is not None else "validation"

    def evaluation(self) -> SplitMetrics:
        """The metrics of :attr:`evaluated_split` (empty when the run wrote none)."""
        return getattr(self, self.evaluated_split) or SplitMetrics()

    def method_facts(self) -> dict[str, Any]:
        """What the method reported beyond the fields declared here (TF-IDF: ``tfidf_features``)."""
        return dict(self.model_extra or {})

    def value(self, name: str) -> Any:
        """The top-level entry ``name`` (a field or a method's fact), None when absent."""
        if name in type(self).model_fields:
            return getattr(self, name)
        return (self.model_extra or {}).get(name)


def evaluated_splits(metrics: RunMetrics | Mapping[str, Any]) -> dict[str, SplitMetrics]:
    """The split metrics to show for ``metrics``: a run's validation and test, or, for any other mapping (the CLI's
    ``{"evaluation": <distiltune evaluate's metrics>}``), each entry that holds one split's metrics."""
    if isinstance(metrics, RunMetrics):
        return metrics.splits()
    if "validation" in metrics or "test" in metrics:
        return RunMetrics.from_dict(dict(metrics)).splits()
    return {
        name: SplitMetrics.model_validate(value)
        for name, value in metrics.items()
        if isinstance(value, Mapping) and "samples" in value
    }


__all__ = [
    "CalibrationReport",
    "LabelThresholdsReport",
    "ClassMetrics",
    "ConfusionMatrix",
    "ReliabilityTable",
    "RunMetrics",
    "SplitMetrics",
    "TemperatureReport",
    "ThresholdReport",
    "evaluated_splits",
]
