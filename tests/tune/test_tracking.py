"""Experiment tracking (``--report-to``, ``train.report_to``): TensorBoard events per run, config as parameters,
offline, limits.

TensorBoard is the tracker exercised end to end here: its writer comes with torch and imports in a fraction of the
time MLflow takes (about 5 s to import, 10 s more to create its default SQLite store on this kind of machine).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

import distiltune
from distiltune.cli import app
from distiltune.errors import ConfigError
from distiltune.training.tracking import PARAM_VALUE_LIMIT, check_tracker, tracker_params


def test_tensorboard_run_logs_metrics_and_the_config_into_the_run_directory(fast_overrides: dict) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # From the command line, as a user asks for it: `--report-to tensorboard`.
    settings = [option for key, value in fast_overrides.items() for option in ("--set", f"{key}={value}")]
    trained = CliRunner().invoke(app, ["train", "--report-to", "tensorboard", *settings])
    assert trained.exit_code == 0, trained.output[-3000:]
    (run_dir,) = Path(str(fast_overrides["run.output_dir"])).iterdir()
    events = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1, "one event file, in RUN_DIR/tensorboard, not under checkpoints/"
    assert not list((run_dir / "checkpoints").rglob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(events[0].parent)).Reload()
    scalars = set(accumulator.Tags()["scalars"])
    assert {"train/loss", "eval/loss", "eval/f1_macro", "eval/accuracy"} <= scalars
    assert len(accumulator.Scalars("eval/f1_macro")) == 2  # one per epoch
    config_text = accumulator.Tensors("distiltune_config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| distiltune.train.lr | 0.001 |" in config_text
    assert f"| distiltune.model.name | {fast_overrides['model.name']} |" in config_text
    args_text = accumulator.Tensors("args/text_summary")[0].tensor_proto.string_val[0].decode()
    assert f'"run_name": "{run_dir.name}"' in args_text


def test_tracker_params_are_flat_strings_and_long_values_are_cut() -> None:
    config = {
        "data": {"label_names": [f"label number {i} with a long name" for i in range(50)], "max_length": None},
        "train": {"lr": 3e-5, "nested": {"id2label": {str(i): f"class-{i}" for i in range(200)}}},
    }
    params = tracker_params(config)
    assert params["distiltune.train.lr"] == "3e-05" and params["distiltune.data.max_length"] == "None"
    assert params["distiltune.data.label_names"].startswith('["label number 0 with a long name", ')
    assert params["distiltune.train.nested.id2label.199"] == "class-199"  # nested maps become dotted keys
    assert all(isinstance(value, str) and len(value) <= PARAM_VALUE_LIMIT for value in params.values())
    assert len(params["distiltune.data.label_names"]) == PARAM_VALUE_LIMIT
    assert params["distiltune.data.label_names"].endswith("...")


def test_a_tracker_that_is_not_installed_is_a_one_line_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real_find_spec(name, *a)
    )
    with pytest.raises(ConfigError, match=r"report_to=wandb needs the wandb package.*pip install"):
        check_tracker("wandb")


def test_wandb_is_offline_unless_the_user_chose_a_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "wandb" else real_find_spec(name, *a)
    )
    monkeypatch.delenv("WANDB_MODE", raising=False)
    check_tracker("wandb")
    import os

    assert os.environ["WANDB_MODE"] == "offline"
    monkeypatch.setenv("WANDB_MODE", "online")
    check_tracker("wandb")
    assert os.environ["WANDB_MODE"] == "online"


def test_report_to_is_a_config_key_with_a_closed_set_of_values() -> None:
    assert distiltune.load_config(None).train.report_to == "none"  # no tracker, no network, unless asked
    assert distiltune.load_config(None, {"train.report_to": "mlflow"}).train.report_to == "mlflow"
    with pytest.raises(ConfigError, match="train.report_to must be one of none, tensorboard, mlflow, wandb"):
        distiltune.load_config(None, {"train.report_to": "all"})
