"""Trainer callbacks: the only place that listens to Trainer events."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from transformers import TrainerCallback

from distiltune.runs import append_jsonl, read_jsonl, write_jsonl

logger = logging.getLogger("distiltune")


class HistoryCallback(TrainerCallback):
    """Append one ``history.jsonl`` row per evaluation: epoch, step, mean train loss since the previous
    evaluation, the accuracy over the training batches since the previous evaluation (``train_accuracy``, counted
    by ``ResumableTrainer.compute_loss`` and handed over by :meth:`record_train_accuracy`), eval loss and every
    eval metric (``eval_`` prefix stripped).

    Every process of a multi-process run keeps the rows (the logged loss, the metrics and the training accuracy are
    already averaged, gathered or summed over the processes); only the one with ``writes`` (the main process) writes
    the file."""

    def __init__(self, path: Path, writes: bool = True) -> None:
        self.path = path
        self.writes = writes
        self._losses: list[float] = []
        self._train_accuracy: float | None = None
        self.rows: list[dict[str, Any]] = []

    def record_train_accuracy(self, correct: int, seen: int) -> None:
        """The training batches' correct predictions and examples since the previous evaluation (called by the
        trainer right before it evaluates; 0 seen, as for a method that does not train, records None)."""
        self._train_accuracy = correct / seen if seen else None

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
            "train_accuracy": self._train_accuracy,
        }
        for key, value in metrics.items():
            name = key.removeprefix("eval_")
            if name in ("runtime", "samples_per_second", "steps_per_second"):
                continue
            row["eval_loss" if name == "loss" else name] = value
        self._losses = []
        self._train_accuracy = None
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


class ConsoleProgress(TrainerCallback):
    """What a person watches during training: one progress bar with the loss and learning rate in its postfix, and
    one table row per evaluation (:class:`EvaluationTable`: epoch, step, losses, accuracy, macro F1, best so far).

    Replaces the Trainer's own bars (which nest an evaluation bar in the training bar) and its printed log dicts.
    Evaluation lines go to the distiltune logger, so they are in train.log too; with no console handler (library
    use) they are also written under the bar. ``show_bar=False`` (``train --quiet``) keeps only the log lines.
    """

    def __init__(
        self, metric: str, show_bar: bool, console_logs: bool, columns: tuple[str, ...] = ("accuracy", "f1_macro")
    ) -> None:
        self.metric = metric
        self.show_bar = show_bar
        self.console_logs = console_logs
        self.bar: Any = None
        self.table = EvaluationTable(metric, columns)
        self.best: float | None = None
        self._losses: list[float] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.show_bar and state.is_local_process_zero:
            self.bar = tqdm(
                total=state.max_steps, initial=state.global_step, desc="training", unit="step", dynamic_ncols=True
            )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        if "loss" in logs and math.isfinite(logs["loss"]):
            self._losses.append(float(logs["loss"]))
            if self.bar is not None:
                postfix = {"loss": f"{logs['loss']:.4f}"}
                if "learning_rate" in logs:
                    postfix["lr"] = f"{logs['learning_rate']:.2e}"
                self.bar.set_postfix(postfix, refresh=False)

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs: Any
    ) -> None:
        if not state.is_local_process_zero:
            return
        metrics = metrics or {}
        key = "eval_loss" if self.metric == "loss" else f"eval_{self.metric}"
        value = metrics.get(key)
        improved = False
        if isinstance(value, int | float):
            better = (lambda a, b: a < b) if self.metric == "loss" else (lambda a, b: a > b)
            improved = self.best is None or better(value, self.best)
            if improved:
                self.best = float(value)
        train_loss = sum(self._losses) / len(self._losses) if self._losses else None
        self._losses = []
        if not self.table.header_done:
            self.table.header_done = True
            self.emit(self.table.header())
        self.emit(self.table.row(float(state.epoch or 0.0), state.global_step, train_loss, metrics, improved))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def emit(self, line: str) -> None:
        write: Callable[[], None] = lambda: logger.info("%s", line)  # noqa: E731
        if self.bar is None:
            write()
            return
        # Clear the bar while the line prints, so the two never share a terminal line.
        with tqdm.external_write_mode(file=sys.stderr):
            write()
            if not self.console_logs:
                sys.stderr.write(line + "\n")


class EvaluationTable:
    """One row per evaluation under a header printed once: epoch, step, losses, accuracy, macro F1 (and the
    selection metric when it is another one), and a mark on the best row so far. Rows stay under 70 characters, so
    they fit beside a log level on an 80-column terminal."""

    def __init__(self, metric: str, columns: tuple[str, ...] = ("accuracy", "f1_macro")) -> None:
        """``columns``: the task's progress metrics (single-label: accuracy and macro F1)."""
        self.metric = metric
        self.columns = [*columns] + ([metric] if metric not in (*columns, "loss") else [])
        self.header_done = False

    def header(self) -> str:
        titles = ["epoch", "step", "train loss", "eval loss", *self.columns]
        return "  ".join(f"{title:>{self.width(title)}}" for title in titles)

    def row(self, epoch: float, step: int, train_loss: float | None, metrics: dict[str, float], best: bool) -> str:
        cells = [f"{epoch:.2f}", str(step), _number(train_loss), _number(metrics.get("eval_loss"))]
        cells += [_number(metrics.get(f"eval_{name}")) for name in self.columns]
        titles = ["epoch", "step", "train loss", "eval loss", *self.columns]
        text = "  ".join(f"{cell:>{self.width(title)}}" for cell, title in zip(cells, titles, strict=True))
        return text + ("  best" if best else "")

    @staticmethod
    def width(title: str) -> int:
        return max(len(title), 6)


def _number(value: float | None) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.4f}"
