"""Class-imbalance handling for training: class weights from a config spec, and the ``compute_loss_func`` the Hugging
Face Trainer takes (issue 18). The loss itself belongs to the run's task (:meth:`distiltune.tasks.base.Task.loss`;
single-label: :func:`distiltune.tasks.single_label.classification_loss`).

The training pipeline installs :func:`make_compute_loss` when a run sets class weights or focal loss, or
accumulates gradients (``train.gradient_accumulation_steps > 1``: see the function for the transformers 5.23 bug it
also fixes); otherwise the model computes its own loss, exactly as before.

* :func:`resolve_class_weights` turns ``train.class_weights`` (``none``, ``balanced`` or ``{label: weight}``) into
  one weight per label id, or None.
* :func:`make_compute_loss` wraps the task's loss for ``Trainer(compute_loss_func=...)``, normalised by the
  Trainer's ``num_items_in_batch`` so that gradient accumulation adds up to the loss of the whole accumulated batch.
* :func:`imbalance_warning` is the dataset summary's warning when the largest class dwarfs the smallest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from distiltune.errors import ConfigError, DataError
from distiltune.tasks.base import SINGLE_LABEL, Task, get_task
from distiltune.tasks.single_label import IGNORE_INDEX, LOSS_KINDS, LossKind

IMBALANCE_RATIO = 5.0
"""The dataset summary warns when the largest class has more than this many times the rows of the smallest."""


def resolve_class_weights(
    spec: str | Mapping[str, float] | None,
    label_names: Sequence[str],
    train_labels: Any,
    task: Task[Any] | None = None,
) -> list[float] | None:
    """One loss weight per label id from ``train.class_weights``, or None for unweighted.

    * ``none`` (or None): unweighted.
    * ``balanced``: the ``task``'s rule over the training labels. Single-label: scikit-learn's,
      ``n_samples / (n_classes * count[c])``: every class then carries the same total weight, and the weights
      average to 1 over the training rows. Multi-label: each label's ``pos_weight``, its negative rows over its
      positive rows.
    * ``{label_name: weight}``: the named labels get these weights (positive numbers), the others 1.0 (for a
      multi-label run, the named labels' ``pos_weight``).

    Raises a one-line ConfigError for an unknown spec or label name, a non-positive weight, and a DataError for
    ``balanced`` when a class has no training rows.
    """
    names = [str(name) for name in label_names]
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "none"):
        return None
    if isinstance(spec, str):
        if spec.strip().lower() != "balanced":
            raise ConfigError(
                f"train.class_weights must be none, balanced or a mapping {{label: weight}}; got '{spec}'.",
                f"For example --set 'train.class_weights={{{names[0]}: 2.0}}'.",
            )
        task = task or get_task(SINGLE_LABEL)
        counts = task.label_counts(train_labels, len(names))
        empty = [names[i] for i, count in enumerate(counts) if count == 0]
        if empty:
            raise DataError(
                f"train.class_weights=balanced: label(s) {', '.join(empty)} have no training rows.",
                "Give explicit weights with train.class_weights={label: weight}, or fix the training data.",
            )
        return task.balanced_weights(train_labels, len(names))
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"train.class_weights must be none, balanced or a mapping {{label: weight}}; got {type(spec).__name__}."
        )
    weights = [1.0] * len(names)
    for key, value in spec.items():
        name = str(key)
        if name not in names:
            raise ConfigError(f"train.class_weights: unknown label '{name}'.", f"The labels are: {', '.join(names)}.")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"train.class_weights: the weight of '{name}' must be a positive number, got {value!r}.")
        weights[names.index(name)] = float(value)
    return weights


def class_counts(labels: Any, num_labels: int) -> list[int]:
    """Rows per label id 0..num_labels-1 (a label column, list or array of ids)."""
    ids = np.asarray(labels, dtype=np.int64)
    return np.bincount(ids, minlength=num_labels)[:num_labels].astype(int).tolist()


def make_compute_loss(
    weights: Sequence[float] | None = None,
    kind: LossKind | str = "cross_entropy",
    gamma: float = 2.0,
    task: Task[Any] | None = None,
) -> Callable[..., torch.Tensor]:
    """A ``compute_loss_func`` for ``transformers.Trainer`` (5.x) that trains with ``task``'s loss (default:
    single-label's cross-entropy or focal loss).

    How the Trainer (transformers 5.23, ``Trainer.compute_loss`` / ``training_step``) uses it: with a
    ``compute_loss_func`` it pops ``labels`` from the batch (the model computes no loss of its own), calls
    ``compute_loss_func(outputs, labels, num_items_in_batch=N)`` where ``N`` counts the labels != -100 over *all*
    micro-batches of the optimizer step, and then treats the result as already scaled for gradient accumulation
    (no division by the accumulation steps). So the function returns ``sum of row losses / N``: the micro-batches'
    losses add up to the mean over the accumulated batch, whatever their sizes (a short last batch included).
    During evaluation ``N`` counts the one batch, which gives its mean. Without ``N`` (None) it returns the mean.
    """
    task = task or get_task(SINGLE_LABEL)
    task.check_loss(kind, gamma)
    frozen_weights = None if weights is None else [float(w) for w in weights]

    def compute_loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
        total = task.loss(logits, labels, frozen_weights, kind, gamma, reduction="sum")
        if num_items_in_batch is None:
            return total / (labels != IGNORE_INDEX).sum().clamp(min=1)
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(total.device)
        return total / num_items_in_batch

    return compute_loss


def imbalance_warning(
    counts: Sequence[int],
    label_names: Sequence[str],
    max_ratio: float = IMBALANCE_RATIO,
    thresholds_tunable: bool | None = None,
) -> str | None:
    """The dataset summary's warning when the largest class has more than ``max_ratio`` times the training rows of
    the smallest (None otherwise), naming the options that handle it."""
    if len(counts) < 2:
        return None
    largest, smallest = int(np.argmax(counts)), int(np.argmin(counts))
    if counts[smallest] > 0 and counts[largest] <= max_ratio * counts[smallest]:
        return None
    options = "--class-weights balanced (train.class_weights=balanced) or --loss focal (train.loss=focal)"
    if thresholds_tunable if thresholds_tunable is not None else len(counts) == 2:
        options += ", or --tune-threshold (train.tune_threshold=true)"
    big, small = f"'{label_names[largest]}'", f"'{label_names[smallest]}'"
    if counts[smallest] == 0:
        return f"Imbalanced training labels: {small} has no rows ({big} has {counts[largest]:,}); consider {options}."
    return (
        f"Imbalanced training labels: {big} has {counts[largest] / counts[smallest]:.1f}x the rows of {small} "
        f"({counts[largest]:,} vs {counts[smallest]:,}); consider {options}."
    )


__all__ = [
    "IGNORE_INDEX",
    "IMBALANCE_RATIO",
    "LOSS_KINDS",
    "class_counts",
    "imbalance_warning",
    "make_compute_loss",
    "resolve_class_weights",
]
