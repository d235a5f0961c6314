"""Issue 18's flags from the command line, the way a user runs them: ``distiltune train --long-text chunks
--calibrate temperature --class-weights balanced --tune-threshold``, then ``evaluate``, ``export`` and ``predict``
on that run. Each flag must reach the run's config (a flag the CLI dropped would train a plain run), and every
later command must read the run as it was trained: one row per document, the saved threshold applied."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from make_fixtures import sentiment_rows
from typer.testing import CliRunner

import distiltune
from distiltune import runs
from distiltune.cli import app

#: 12-word reviews (6 words, twice) read 6 words at a time (max length 8 with [CLS] and [SEP]): several windows each.
MAX_LENGTH = 8


@pytest.fixture(scope="module")
def reviews(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reviews")
    rows = [{"text": f"{row['review']} {row['review']}", "label": row["sentiment"]} for row in sentiment_rows(84, 11)]
    for split, part in (("train", rows[:40]), ("validation", rows[40:72]), ("test", rows[72:])):
        pd.DataFrame(part).to_csv(folder / f"{split}.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def cli_run(tiny_model: str, reviews: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("runs")
    result = CliRunner().invoke(
        app,
        [
            "train",
            *("--dataset", str(reviews), "--model", tiny_model, "--max-length", str(MAX_LENGTH)),
            *("--epochs", "3", "--batch-size", "8", "--lr", "0.01", "--output-dir", str(output), "--name", "flags"),
            *("--long-text", "chunks", "--calibrate", "temperature", "--class-weights", "balanced"),
            "--tune-threshold",
            *("--set", "train.precision=fp32", "--set", "train.warmup_fraction=0"),
        ],
    )
    assert result.exit_code == 0, result.output[-3000:]
    return output / "flags"


def test_every_flag_reaches_the_runs_config_and_its_results(cli_run: Path) -> None:
    config = yaml.safe_load((cli_run / runs.CONFIG_FILE).read_text())
    assert config["data"]["long_text"] == "chunks"
    assert config["train"]["calibrate"] == "temperature"
    assert config["train"]["class_weights"] == "balanced"
    assert config["train"]["tune_threshold"] is True
    metrics = runs.read_json(cli_run / runs.METRICS_FILE)
    assert metrics["train_windows"] >= 2 * 40  # read in windows, not cut at the head
    assert {"temperature", "threshold"} <= set(metrics)
    saved = runs.read_json(cli_run / runs.MODEL_DIR / runs.CALIBRATION_FILE)
    assert saved["threshold"] == metrics["threshold"]["value"]
    assert saved["temperature"] == metrics["temperature"]["value"]
    assert len(runs.read_jsonl(cli_run / runs.PREDICTIONS_FILE)) == 84 - 72  # one row per test review


def test_evaluate_export_and_predict_read_the_run_as_it_was_trained(cli_run: Path, reviews: Path) -> None:
    test = pd.read_csv(reviews / "test.csv")
    # The commands load with the default precision (bf16 where the CPU has it), so the reference does too.
    expected = [row["label"] for row in distiltune.load(cli_run).predict(test["text"].tolist())]

    evaluated = CliRunner().invoke(app, ["evaluate", str(cli_run), "--dataset", str(reviews / "test.csv")])
    assert evaluated.exit_code == 0, evaluated.output[-3000:]
    metrics = runs.read_json(cli_run / "eval_test.json")
    assert set(metrics["calibration"]) >= {"ece", "brier", "nll"}
    assert (cli_run / "eval_test.reliability.png").stat().st_size > 0
    rows = runs.read_jsonl(cli_run / "eval_test.predictions.jsonl")
    assert [row["predicted"] for row in rows] == expected  # one row per review, thresholded

    exported = CliRunner().invoke(app, ["export", str(cli_run)])
    assert exported.exit_code == 0, exported.output[-3000:]
    onnx_dir = cli_run / "export" / "onnx"
    assert runs.read_json(onnx_dir / "export.json")["long_text"]["mode"] == "chunks"
    assert (onnx_dir / runs.CALIBRATION_FILE).is_file()

    predicted = CliRunner().invoke(app, ["predict", str(cli_run), *test["text"].tolist()[:3]])
    assert predicted.exit_code == 0, predicted.output[-3000:]
    printed = [json.loads(line) for line in predicted.stdout.strip().split("\n")]
    assert len(printed) == 3
    assert all(row["threshold"]["label"] in ("pos", "neg") and len(row["scores"]) == 2 for row in printed)
