"""The Trainer callback that feeds a trial's evaluations to its Optuna study and stops the trial when pruned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from transformers import TrainerCallback


@dataclass(frozen=True)
class PrunedAt:
    """Where a trial was pruned: the evaluation (1-based, the pruner's step), and the run's epoch and step."""

    evaluation: int
    epoch: float
    step: int
    metric: str
    value: float

    def describe(self) -> str:
        return f"evaluation {self.evaluation} (epoch {self.epoch:g}, step {self.step}): {self.metric} {self.value:.4f}"


class PruningCallback(TrainerCallback):
    """Reports the run's selection metric (``metric_for_best_model``) to ``trial`` after every evaluation, and
    raises ``optuna.TrialPruned`` at once when the study's pruner says so.

    The pruner's step is the evaluation's ordinal (1, 2, ...: the epoch with ``eval_strategy=epoch``), not the
    optimizer step, so trials with different batch sizes are compared at the same point of their training.
    """

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.evaluations = 0
        self.pruned_at: PrunedAt | None = None

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs: Any
    ) -> None:
        metric = args.metric_for_best_model or "loss"
        value = (metrics or {}).get(metric if metric.startswith("eval_") else f"eval_{metric}")
        if value is None:
            return
        self.evaluations += 1
        self.trial.report(float(value), step=self.evaluations)
        if self.trial.should_prune():
            self.pruned_at = PrunedAt(
                self.evaluations, round(float(state.epoch or 0.0), 4), int(state.global_step), metric, float(value)
            )
            raise optuna.TrialPruned(f"Trial {self.trial.number} pruned at {self.pruned_at.describe()}.")


__all__ = ["PrunedAt", "PruningCallback"]
