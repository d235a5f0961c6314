"""Trainer callbacks: the only place that listens to Trainer events."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from distiltune.runs import append_jsonl


class HistoryCallback(TrainerCallback):
    """Append one ``history.jsonl`` row per evaluation: epoch, step, mean train loss since the previous
    evaluation, eval loss and every eval metric (``eval_`` prefix stripped)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._losses: list[float] = []
        self.rows: list[dict[str, Any]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if logs and "loss" in logs and math.isfinite(logs["loss"]):
            self._losses.append(float(logs["loss"]))

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs: Any
    ) -> None:
        metrics = metrics or {}
        row: dict[str, Any] = {
            "epoch": round(float(state.epoch or 0.0), 4),
            "step": int(state.global_step),
            "train_loss": sum(self._losses) / len(self._losses) if self._losses else None,
        }
        for key, value in metrics.items():
            name = key.removeprefix("eval_")
            if name in ("runtime", "samples_per_second", "steps_per_second"):
                continue
            row["eval_loss" if name == "loss" else name] = value
        self._losses = []
        self.rows.append(row)
        append_jsonl(self.path, row)
