"""The run-directory contract: the names in ``runs.py`` are the files a run writes, and run directories written by
distiltune before the package regrouping (``tests/fixtures/old_runs``, made by ``make_old_runs.py`` at commit
6b431ad) still load, predict, evaluate and resume."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

import distiltune
from conftest import FIXTURES
from distiltune import runs

OLD_RUNS = FIXTURES / "old_runs"


def test_the_contract_names_the_files_a_run_writes(fast_overrides: dict) -> None:
    run = distiltune.train(None, fast_overrides)
    contract = {
        runs.CONFIG_FILE,
        runs.ENV_FILE,
        runs.MODEL_DIR,
        runs.CHECKPOINTS_DIR,
        runs.STATUS_FILE,
        runs.HISTORY_FILE,
        runs.METRICS_FILE,
        runs.PREDICTIONS_FILE,
        runs.PLOTS_DIR,
        runs.LOG_FILE,
    }
    assert {p.name for p in run.dir.iterdir()} == contract
    assert (run.dir / runs.MODEL_DIR / runs.LABELS_FILE).is_file()
    assert runs.read_status(run.dir)["status"] == "completed" and runs.is_completed(run.dir)
    assert runs.saved_method(run.dir) == "full"


def old_run(name: str, tmp_path: Path, tiny_model: str) -> Path:
    """A copy of an old run whose config points at this machine's tiny encoder and fixture data."""
    target = tmp_path / name
    shutil.copytree(OLD_RUNS / name, target)
    config_path = target / runs.CONFIG_FILE
    config = yaml.safe_load(config_path.read_text())
    config["model"]["name"] = tiny_model
    config["data"]["dataset"] = str(FIXTURES / "tiny.csv")
    config["run"]["output_dir"] = str(tmp_path)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


@pytest.mark.parametrize("name", ["completed_full", "completed_tfidf"])
def test_an_old_run_loads_and_predicts_what_it_predicted_then(name: str, tmp_path: Path, tiny_model: str) -> None:
    run_dir = old_run(name, tmp_path, tiny_model)
    rows = runs.read_jsonl(run_dir / runs.PREDICTIONS_FILE)
    classifier = distiltune.load(run_dir, precision="fp32")
    probabilities = classifier.predict_proba([row["text"] for row in rows])
    expected = np.array([[row["probabilities"][label] for label in classifier.label_names] for row in rows])
    assert np.allclose(probabilities, expected, atol=2e-6)
    metrics = distiltune.evaluate(run_dir, str(FIXTURES / "tiny.csv"))
    assert metrics["samples"] == 24 and 0 <= metrics["accuracy"] <= 1


def test_an_old_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path: Path, tiny_model: str) -> None:
    from transformers import TrainerCallback

    class StepCounter(TrainerCallback):
        steps: list[int] = []

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
            self.steps.append(state.global_step)

    run_dir = old_run("interrupted_full", tmp_path, tiny_model)
    assert runs.read_status(run_dir)["status"] == "interrupted"
    counter = StepCounter()
    resumed = distiltune.train(resume=run_dir, callbacks=[counter])
    # It continued from the old checkpoint (step 5 of 15), not from the start.
    assert counter.steps == list(range(6, 16))
    assert runs.read_status(run_dir)["resumed_from"] == "checkpoints/checkpoint-5"
    expected = runs.read_json(OLD_RUNS / "uninterrupted_metrics" / runs.METRICS_FILE)
    for split in ("validation", "test"):
        if split in expected:
            for key in ("accuracy", "f1_macro"):
                assert resumed.metrics[split][key] == pytest.approx(expected[split][key], abs=1e-9), (split, key)
    history = runs.read_jsonl(run_dir / runs.HISTORY_FILE)
    expected_history = runs.read_jsonl(OLD_RUNS / "uninterrupted_metrics" / runs.HISTORY_FILE)
    assert [row["step"] for row in history] == [row["step"] for row in expected_history]
    assert np.allclose([row["eval_loss"] for row in history], [row["eval_loss"] for row in expected_history])
    assert runs.read_status(run_dir)["status"] == "completed"
