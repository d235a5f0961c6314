"""Trainer callbacks: the only place that listens to Trainer events."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from distiltune.runs import append_jsonl, read_jsonl, write_jsonl


class HistoryCallback(TrainerCallback):
    """Append one ``history.jsonl`` row per evaluation: epoch, step, mean train loss since the previous
    evaluation, eval loss and every eval metric (``eval_`` prefix stripped).

    Every process of a multi-process run keeps the rows (the logged loss and the metrics are already averaged and
    gathered over the processes); only the one with ``writes`` (the main process) writes the file."""

    def __init__(self, path: Path, writes: bool = True) -> None:
        self.path = path
        self.writes = writes
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
        if self.writes:
            append_jsonl(self.path, row)

    # Saved into every checkpoint by ResumableTrainer, so a resumed run continues the same history.
    def checkpoint_state(self) -> dict[str, Any]:
        return {"rows": len(self.rows), "pending_losses": list(self._losses)}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Drop rows written after the checkpoint (an evaluation can finish just before a crash) and restore
        the losses logged since the last evaluation."""
        self.rows = read_jsonl(self.path)[: int(state["rows"])]
        if self.writes:
            write_jsonl(self.path, self.rows)
        self._losses = [float(loss) for loss in state["pending_losses"]]
