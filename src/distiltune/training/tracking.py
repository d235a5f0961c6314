"""Experiment tracking (``train.report_to``): the Trainer's own TensorBoard, MLflow or W&B integration, offline.

distiltune adds three things to what ``TrainingArguments(report_to=...)`` already does:

- the tracker run is named after the run directory, and TensorBoard writes to ``RUN_DIR/tensorboard/`` (so
  ``tensorboard --logdir runs`` lists every run by its directory name) instead of inside ``checkpoints/``;
- the resolved distiltune config is logged as parameters (``distiltune.train.lr`` ...), flattened and with long
  values cut to :data:`PARAM_VALUE_LIMIT` characters so no tracker refuses them (MLflow limits parameter values);
- nothing goes over the network unless asked: W&B runs with ``WANDB_MODE=offline`` unless the variable is set,
  and MLflow keeps its local default store (``sqlite:///mlflow.db`` in the working directory for mlflow 3.x, or
  ``./mlruns`` where that already holds runs) unless ``MLFLOW_TRACKING_URI`` says otherwise.

A run that fails or is interrupted ends its MLflow/W&B run as failed/killed, so the next run in the same process
(a comparison, a search) does not log into it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from distiltune import runs
from distiltune.errors import ConfigError

logger = logging.getLogger("distiltune")

TRACKERS = ("none", "tensorboard", "mlflow", "wandb")
#: Parameter values are cut to this many characters: MLflow refuses longer ones (6,000 in mlflow 2.x/3.x, 500 in
#: older servers), and a label list of a 50-class task is no more readable at full length in any tracker.
PARAM_VALUE_LIMIT = 500
PARAM_PREFIX = "distiltune"
#: MLflow takes at most 100 parameters per request (mlflow.utils.validation.MAX_PARAMS_TAGS_PER_BATCH).
_MLFLOW_BATCH = 100
#: Packages that provide each tracker, as the Trainer's integration imports them (any one of them will do).
_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",), "wandb": ("wandb",)}


def check_tracker(report_to: str) -> None:
    """Raise a ConfigError naming the missing package when ``report_to``'s tracker is not installed, and keep W&B
    offline unless the user chose a mode."""
    if report_to == "none":
        return
    if report_to not in _PACKAGES:
        raise ConfigError(f"train.report_to must be one of {', '.join(TRACKERS)}; got '{report_to}'.")
    if not any(importlib.util.find_spec(package) for package in _PACKAGES[report_to]):
        package = _PACKAGES[report_to][0]
        raise ConfigError(
            f"train.report_to={report_to} needs the {package} package, which is not installed.",
            f"pip install 'distiltune[{report_to}]' (or pip install {package}), or use --report-to none.",
        )
    if report_to == "wandb":
        os.environ.setdefault("WANDB_MODE", "offline")


def tracker_params(config: dict[str, Any], limit: int = PARAM_VALUE_LIMIT) -> dict[str, str]:
    """``{"distiltune.section.key": "value"}`` from a nested config dict: nested mappings flattened into dotted keys,
    lists as JSON, None as "None", every value cut to ``limit`` characters (the cut ones end in "...")."""
    flat: dict[str, str] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                visit(f"{prefix}.{key}", inner)
            return
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, list | tuple) else str(value)
        flat[prefix] = text if len(text) <= limit else text[: limit - 3] + "..."

    visit(PARAM_PREFIX, config)
    return flat


def attach_tracking(trainer: Any, config_dict: dict[str, Any], report_to: str, run_dir: Path) -> None:
    """Point the Trainer's tracker integration at this run and add the callback that logs distiltune's config."""
    if report_to == "none":
        return
    from transformers.integrations import TensorBoardCallback

    tensorboard = next((cb for cb in trainer.callback_handler.callbacks if isinstance(cb, TensorBoardCallback)), None)
    if tensorboard is not None and tensorboard.logging_dir is None:  # TENSORBOARD_LOGGING_DIR, when set, wins
        tensorboard.logging_dir = str(run_dir / runs.TENSORBOARD_DIR)
    trainer.add_callback(ConfigToTracker(report_to, config_dict, tensorboard))


class ConfigToTracker(TrainerCallback):
    """Logs the resolved distiltune config to the tracker once, when training begins.

    It runs after the Trainer's integration callbacks (the Trainer puts those first), so the MLflow/W&B run and the
    TensorBoard writer exist by then.
    """

    def __init__(self, report_to: str, config_dict: dict[str, Any], tensorboard: Any = None) -> None:
        self.report_to = report_to
        self.params = tracker_params(config_dict)
        self.tensorboard = tensorboard

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        if self.report_to == "mlflow":
            import mlflow

            if mlflow.active_run() is not None:
                items = list(self.params.items())
                for start in range(0, len(items), _MLFLOW_BATCH):
                    mlflow.log_params(dict(items[start : start + _MLFLOW_BATCH]))
        elif self.report_to == "wandb":
            import wandb

            if wandb.run is not None:
                wandb.config.update(self.params, allow_val_change=True)
        elif self.report_to == "tensorboard":
            writer = getattr(self.tensorboard, "tb_writer", None)
            if writer is not None:
                rows = "\n".join(f"| {key} | {value} |" for key, value in self.params.items())
                writer.add_text("distiltune_config", f"| parameter | value |\n|---|---|\n{rows}")
                writer.flush()


@contextmanager
def tracker_run_closed_on_error(report_to: str) -> Iterator[None]:
    """End the tracker's active run as failed (or killed, on Ctrl-C) when training raises.

    The Trainer's MLflow/W&B callbacks end their run in ``on_train_end``, which never comes when training raises;
    MLflow's callback would then log the next run of this process into the one left open.
    """
    try:
        yield
    except BaseException as err:
        status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
        if report_to == "mlflow":
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.end_run(status=status)
        elif report_to == "wandb":
            import wandb

            if wandb.run is not None:
                wandb.finish(exit_code=1)
        raise


__all__ = [
    "PARAM_VALUE_LIMIT",
    "TRACKERS",
    "ConfigToTracker",
    "attach_tracking",
    "check_tracker",
    "tracker_params",
    "tracker_run_closed_on_error",
]
