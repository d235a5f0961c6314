"""Hyperparameter search on the tiny model: outputs, best.yaml repeating its trial, pruning, failures, workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import distiltune
from distiltune import runs
from distiltune.cli import app
from distiltune.errors import ConfigError, RunError

LR_ONLY = {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}


def test_search_writes_its_outputs_and_best_yaml_repeats_the_best_trial(fast_overrides: dict, tmp_path: Path) -> None:
    base = {**fast_overrides, "train.epochs": 1}
    result = distiltune.tune(
        None, base, trials=2, space=LR_ONLY, output_dir=tmp_path / "tune", pruner="none", sampler_seed=0
    )
    assert isinstance(result, distiltune.TuneResult)
    assert result.dir.parent == tmp_path / "tune" and result.dir.name.endswith("_distilbert_tiny_full")
    assert result.counts["complete"] == 2 and result.metric == "f1_macro" and result.direction == "maximize"
    assert {p.name for p in result.dir.iterdir()} >= {
        "tune.yaml",
        "study.db",
        "tune.log",
        "trials",
        "trials.csv",
        "best.yaml",
        "tune.json",
        "plots",
        "report.html",
    }
    # Each trial is an ordinary, completed run; its checkpoints are gone, its model stays.
    for row in result.trials:
        run_dir = Path(row["run_dir"])
        assert run_dir.parent == result.dir / "trials" and run_dir.name == f"trial_{row['number']:04d}"
        assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
        assert (run_dir / "model").is_dir() and not (run_dir / "checkpoints").exists()
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["train"]["lr"] == pytest.approx(row["params"]["train.lr"])
        assert row["value"] == runs.read_json(run_dir / "metrics.json")["validation"]["f1_macro"]
    lrs = [row["params"]["train.lr"] for row in result.trials]
    assert lrs[0] != lrs[1]
    table = pd.read_csv(result.dir / "trials.csv")
    assert list(table["number"]) == [0, 1] and list(table["state"]) == ["complete", "complete"]
    assert table["train.lr"].tolist() == pytest.approx(lrs) and "validation_accuracy" in table.columns
    assert {p.name for p in (result.dir / "plots").iterdir()} == {
        "optimization_history.png",
        "intermediate_values.png",
        "param_importances.png",
    }
    html = (result.dir / "report.html").read_text()
    assert "Best trial" in html and html.count("data:image/png;base64,") == 3
    assert set(result.importances) == {"train.lr"}

    # `distiltune train --config best.yaml` repeats the best trial: same config, same validation scores and
    # predictions.
    best_dir = Path(result.trials[result.best_trial]["run_dir"])
    assert result.best_value == max(row["value"] for row in result.trials)
    assert Path(result.best_config) == result.dir / "best.yaml"
    command = ["train", "--config", str(result.best_config), "--output-dir", str(tmp_path), "--name", "again"]
    trained = CliRunner().invoke(app, command)
    assert trained.exit_code == 0, trained.output[-3000:]
    again = tmp_path / "again"
    expected = runs.read_json(best_dir / "metrics.json")["validation"]
    repeated_metrics = runs.read_json(again / "metrics.json")["validation"]
    for key in ("accuracy", "f1_macro", "precision_macro", "recall_macro", "confusion_matrix"):
        assert repeated_metrics[key] == expected[key], key
    probabilities = [row["probabilities"] for row in runs.read_jsonl(best_dir / "predictions.jsonl")]
    repeated = [row["probabilities"] for row in runs.read_jsonl(again / "predictions.jsonl")]
    assert _close(repeated, probabilities)
    config = yaml.safe_load((again / "config.yaml").read_text())
    assert config["train"]["lr"] == pytest.approx(result.best_params["train.lr"])

    # Re-running continues the same study in the same folder, with new values though the sampler seed is the same;
    # a changed config may not join it.
    more = distiltune.tune(
        None, base, trials=3, space=LR_ONLY, output_dir=tmp_path / "tune", pruner="none", sampler_seed=0
    )
    assert more.dir == result.dir and [row["number"] for row in more.trials] == [0, 1, 2]
    assert more.counts["complete"] == 3
    assert more.trials[2]["params"]["train.lr"] not in lrs
    with pytest.raises(ConfigError, match=r"Study 'distilbert_tiny_full' was started with another config: "):
        distiltune.tune(None, {**base, "train.epochs": 2}, trials=4, space=LR_ONLY, output_dir=tmp_path / "tune")


def _close(rows: list[dict[str, float]], expected: list[dict[str, float]]) -> bool:
    return len(rows) == len(expected) and all(
        row.keys() == other.keys() and all(abs(row[k] - other[k]) <= 1e-6 for k in row)
        for row, other in zip(rows, expected, strict=True)
    )


def test_a_pruned_trial_stops_at_the_evaluation_where_it_is_pruned(fast_overrides: dict, tmp_path: Path) -> None:
    import optuna

    # Every score is below 2, so this pruner stops the trial at its first evaluation (of three epochs).
    result = distiltune.tune(
        None,
        {**fast_overrides, "train.epochs": 3},
        trials=1,
        space=LR_ONLY,
        output_dir=tmp_path / "tune",
        pruner=optuna.pruners.ThresholdPruner(lower=2.0),
    )
    assert result.counts["pruned"] == 1 and result.counts["complete"] == 0
    assert result.best_trial is None and result.best_config is None and not (result.dir / "best.yaml").exists()
    trial = result.trials[0]
    assert trial["state"] == "pruned" and len(trial["intermediate_values"]) == 1
    run_dir = Path(trial["run_dir"])
    history = runs.read_jsonl(run_dir / "history.jsonl")
    assert [row["epoch"] for row in history] == [1.0]  # stopped after the first of three epochs
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "pruned" and status["evaluation"] == 1 and status["epoch"] == 1.0
    assert status["metric"] == "f1_macro" and status["value"] == pytest.approx(history[0]["f1_macro"])
    assert "resume" not in status and not (run_dir / "model").exists()
    log = (run_dir / "train.log").read_text()
    assert "pruned at evaluation 1 (epoch 1, step " in log and "Run failed" not in log
    assert trial["pruned_at"].startswith("evaluation 1 (epoch 1, step ")
    assert "pruned" in (result.dir / "trials.csv").read_text()


def test_failed_trials_are_recorded_and_a_worker_stops_after_three_in_a_row(
    fast_overrides: dict, tmp_path: Path
) -> None:
    # max_length 4096 is a valid config value but exceeds the tiny model's 64 positions: each trial fails before its
    # run directory exists.
    space = {"data.max_length": {"type": "categorical", "choices": [4096]}}
    with pytest.raises(RunError, match=r"3 trials in a row failed; this worker stopped\. Last error: .*64 tokens"):
        distiltune.tune(None, fast_overrides, trials=2, space=space, output_dir=tmp_path / "tune")
    (tune_dir,) = [path for path in (tmp_path / "tune").iterdir() if path.is_dir()]
    table = pd.read_csv(tune_dir / "trials.csv")
    assert list(table["state"]) == ["fail"] * 3 and table["error"].str.contains("exceeds the model's limit").all()
    assert not list((tune_dir / "trials").glob("trial_*/model"))
    assert (tune_dir / "tune.log").read_text().count("--- traceback of trial_") == 3


def test_two_workers_share_one_sqlite_study_without_duplicate_trials(fast_overrides: dict, tmp_path: Path) -> None:
    import optuna

    space_file = tmp_path / "space.yaml"
    space_file.write_text("train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    sets = [f"--set={key}={value}" for key, value in {**fast_overrides, "train.epochs": 1}.items()]
    command = [sys.executable, "-m", "distiltune", "tune", "--trials", "4", "--storage", storage, "--study", "shared"]
    command += ["--space", str(space_file), "--pruner", "none", "--output-dir", str(tmp_path / "tune"), "-q", *sets]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in "ab"]
    outputs = [worker.communicate(timeout=300)[0].decode() for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs

    trials = optuna.load_study(study_name="shared", storage=storage).get_trials()
    numbers = [trial.number for trial in trials]
    assert sorted(numbers) == list(range(len(trials))) and len(trials) in (4, 5)  # each may start one extra
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in trials)
    workers_seen = {trial.user_attrs["worker"] for trial in trials}
    assert len(workers_seen) == 2, "both workers ran trials"
    run_dirs = {trial.user_attrs["run_dir"] for trial in trials}
    assert len(run_dirs) == len(trials) and all(Path(run_dir).is_dir() for run_dir in run_dirs)
    (tune_dir,) = [path for path in (tmp_path / "tune").iterdir() if path.is_dir()]  # both workers found it
    assert {Path(run_dir).parent for run_dir in run_dirs} == {tune_dir / "trials"}
    assert len(pd.read_csv(tune_dir / "trials.csv")) == len(trials)


def test_cli_tune_reports_a_bad_space_file_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from distiltune.cli import app

    space_file = tmp_path / "space.yaml"
    space_file.write_text("train.lrr: {type: float, low: 1.0e-5, high: 1.0e-3}\n")
    result = CliRunner().invoke(app, ["tune", "--space", str(space_file), "--output-dir", str(tmp_path / "t")])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    message = str(result.exception)
    assert "\n" not in message
    assert message == f"{space_file}: train.lrr: not a config key of method 'full'. Did you mean 'train.lr'?"
    assert not (tmp_path / "t").exists()


def test_make_pruner_names() -> None:
    import optuna

    from distiltune.tuning import make_pruner

    assert isinstance(make_pruner("median"), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("hyperband"), optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner("none"), optuna.pruners.NopPruner)
    with pytest.raises(ConfigError, match="--pruner must be one of median, hyperband, none; got 'asha'"):
        make_pruner("asha")
