"""Prediction: round trip through a fresh process, top-k, input order, CLI predict and evaluate."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import distiltune
from distiltune.cli import app
from distiltune.runs import read_jsonl

TEXTS = ["the movie was great and fun", "boring awful plot", "the acting", "love it", "hate this very dull film"]


@pytest.fixture
def trained_run(fast_overrides: dict):
    return distiltune.train(None, fast_overrides)


def test_saved_run_reloaded_in_a_fresh_process_predicts_identically(trained_run) -> None:
    in_memory = trained_run.load().predict_proba(TEXTS)
    script = (
        "import json, sys, distiltune\n"
        "probabilities = distiltune.load(sys.argv[1]).predict_proba(json.loads(sys.argv[2]))\n"
        "print(json.dumps(probabilities.tolist()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(trained_run.dir), json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    reloaded = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
    assert np.allclose(in_memory, reloaded, atol=1e-6)


def test_predictions_come_back_in_input_order_whatever_the_batching(trained_run) -> None:
    classifier = trained_run.load()
    one_by_one = np.concatenate([classifier.predict_proba([text]) for text in TEXTS])
    batched = classifier.predict_proba(TEXTS, batch_size=2)
    assert np.allclose(one_by_one, batched, atol=1e-5)


def test_top_k_returns_sorted_label_scores(trained_run) -> None:
    result = trained_run.load().predict("the movie was great", top_k=5)[0]
    assert len(result["scores"]) == 2  # capped at the number of labels
    assert result["scores"][0]["score"] >= result["scores"][1]["score"]
    assert result["label"] == result["scores"][0]["label"] and result["score"] == result["scores"][0]["score"]


def test_cli_predict_texts_file_and_evaluate(trained_run, tmp_path: Path, fixtures_dir: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(trained_run.dir), "great fun", "awful", "--top-k", "2"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [line["text"] for line in lines] == ["great fun", "awful"] and len(lines[0]["scores"]) == 2

    output = tmp_path / "out" / "predictions.jsonl"
    result = runner.invoke(
        app, ["predict", str(trained_run.dir), "--input", str(fixtures_dir / "tiny.csv"), "--output", str(output)]
    )
    assert result.exit_code == 0, result.output
    rows = read_jsonl(output)
    assert len(rows) == 24 and rows[0]["label"] in ("neg", "pos")

    result = runner.invoke(app, ["evaluate", str(trained_run.dir), "--dataset", str(fixtures_dir / "tiny.csv")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((trained_run.dir / "eval_tiny.json").read_text())
    assert metrics["samples"] == 24 and 0 <= metrics["accuracy"] <= 1
    assert len((trained_run.dir / "eval_tiny.predictions.jsonl").read_text().splitlines()) == 24


def test_cli_train_prints_a_table_and_errors_are_one_line(tiny_model: str, tmp_path: Path, fixtures_dir: Path) -> None:
    base = [sys.executable, "-m", "distiltune", "train", "--model", tiny_model, "--output-dir", str(tmp_path)]
    good = [
        "--dataset",
        str(fixtures_dir / "tiny.csv"),
        "--text-column",
        "review",
        "--label-column",
        "sentiment",
        "--max-length",
        "16",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--set",
        "train.precision=fp32",
    ]
    ok = subprocess.run(base + good, capture_output=True, text=True, timeout=180)
    assert ok.returncode == 0, ok.stderr
    assert "accuracy" in ok.stdout and "f1_macro" in ok.stdout and "Run directory:" in ok.stdout
    assert "step/s]" in ok.stderr or "s/step]" in ok.stderr  # one training bar, counting steps
    headers = re.findall(r"epoch +step +train loss +eval loss +accuracy +f1_macro", ok.stderr)
    rows = re.findall(r"INFO +(\d+\.\d\d) +(\d+)(?: +\d\.\d{4}){4}( +best)?", ok.stderr)
    assert len(headers) == 1 and [(epoch, step, best.strip()) for epoch, step, best in rows] == [("1.00", "3", "best")]
    raw = ("{'loss'", "{'eval_loss'", "{'train_runtime'", "Writing model shards", "it/s]")
    assert not any(marker in ok.stdout + ok.stderr for marker in raw), ok.stderr

    quiet = subprocess.run(base + good + ["--quiet"], capture_output=True, text=True, timeout=180)
    assert quiet.returncode == 0, quiet.stderr
    assert "Run directory:" in quiet.stdout and "accuracy" in quiet.stdout
    noise = ("it/s]", "s/it]", "step/s]", "s/step]", "train loss", "{'loss'", "{'eval_loss'", "{'train_runtime'")
    assert not any(marker in quiet.stdout + quiet.stderr for marker in noise), quiet.stdout + quiet.stderr

    bad = subprocess.run(
        base + ["--dataset", str(fixtures_dir / "tiny.csv"), "--label-column", "stars"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Columns are: review, sentiment" in errors[0]
    assert "Traceback" not in bad.stderr


def test_pair_prediction_from_the_cli(fast_overrides: dict, fixtures_dir: Path) -> None:
    run = distiltune.train(
        None,
        {
            **fast_overrides,
            "data.dataset": str(fixtures_dir / "pairs.tsv"),
            "data.text_column": None,
            "data.label_column": None,
            "train.max_steps": 2,
        },
    )
    result = CliRunner().invoke(app, ["predict", str(run.dir), "--pair", "the man runs", "a man runs", "--top-k", "2"])
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.strip())
    assert line["text_pair"] == "a man runs" and len(line["scores"]) == 2


def test_top_k_3_on_a_4_label_model_returns_three_labels_best_first(fast_overrides: dict, tmp_path: Path) -> None:
    import pandas as pd

    rows = [
        (f"{word} story number {i}", label)
        for i in range(6)
        for word, label in (("good", "pos"), ("bad", "neg"), ("plays", "sports"), ("stock", "market"))
    ]
    path = tmp_path / "four.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    overrides = {**fast_overrides, "data.dataset": str(path), "data.text_column": None, "data.label_column": None}
    run = distiltune.train(None, {**overrides, "train.max_steps": 2})
    assert run.load().label_names == ["market", "neg", "pos", "sports"]
    result = CliRunner().invoke(app, ["predict", str(run.dir), "a good stock", "--top-k", "3"])
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.strip())
    scores = [item["score"] for item in line["scores"]]
    assert len(line["scores"]) == 3 and scores == sorted(scores, reverse=True)
    assert len({item["label"] for item in line["scores"]}) == 3 and line["label"] == line["scores"][0]["label"]
    probabilities = run.load().predict_proba(["a good stock"])[0]
    assert [item["label"] for item in line["scores"]] == [
        run.load().label_names[i] for i in probabilities.argsort()[::-1][:3]
    ]
