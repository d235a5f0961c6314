"""Multi-label runs end to end on a tiny model: every method trains, the run directory says what it is, per-label
thresholds are saved and applied identically by torch, ONNX and the server, TF-IDF learns one-vs-rest, compare
reports macro-F1 with its recommendation, and the CLI reads every label form."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import distiltune
from distiltune import runs
from distiltune.cli import app

LABELS = ["anger", "joy", "love"]
WORDS = {"anger": ["furious", "angry", "mad"], "joy": ["happy", "glad", "cheerful"], "love": ["adore", "darling"]}
FILLER = ["the", "a", "bus", "day", "was", "and"]


def rows(count: int, seed: int) -> list[dict[str, Any]]:
    """Texts whose labels are the keyword groups they contain (about a fifth of the rows have none)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        labels = [label for label in LABELS if rng.random() < 0.4]
        words = [rng.choice(WORDS[label]) for label in labels for _ in range(2)] + rng.sample(FILLER, 3)
        rng.shuffle(words)
        out.append({"text": " ".join(words), "labels": labels})
    return out


@pytest.fixture(scope="module")
def emotions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("emotions")
    for split, count, seed in (("train", 160, 0), ("validation", 60, 1), ("test", 40, 2)):
        text = "\n".join(json.dumps(row) for row in rows(count, seed))
        (folder / f"{split}.jsonl").write_text(text + "\n", encoding="utf-8")
    return folder


def overrides(tiny_model: str, data: Path, output: Path, **extra: Any) -> dict[str, Any]:
    return {
        "model.name": tiny_model,
        "data.dataset": str(data),
        "data.max_length": 16,
        "train.epochs": 4,
        "train.batch_size": 8,
        "train.lr": 3e-3,
        "train.precision": "fp32",
        "run.output_dir": str(output),
        **extra,
    }


@pytest.fixture(scope="module")
def thresholded_run(tiny_model: str, emotions: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return distiltune.train(
        None, overrides(tiny_model, emotions, tmp_path_factory.mktemp("runs"), **{"train.tune_threshold": True})
    )


def test_a_multi_label_run_writes_what_it_is(thresholded_run: Any) -> None:
    run_dir = thresholded_run.dir
    assert runs.read_model_info(run_dir / "model")["task"] == "multi_label"
    assert thresholded_run.config.data.multi_label is True
    metrics = runs.read_json(run_dir / "metrics.json")
    assert metrics["task"] == "multi_label" and metrics["metric_for_best"] == "f1_macro"
    test = metrics["test"]
    assert {"f1_micro", "f1_macro", "f1_weighted", "subset_accuracy", "hamming_loss", "lrap"} <= set(test)
    assert set(test["per_label"]) == set(LABELS) and test["calibration"]["kind"] == "label cells"
    assert set(metrics["threshold"]["values"]) == set(LABELS)
    row = runs.read_jsonl(run_dir / "predictions.jsonl")[0]
    assert isinstance(row["gold"], list) and isinstance(row["labels"], list) and set(row["scores"]) == set(LABELS)
    calibration = runs.read_json(run_dir / "model" / "calibration.json")
    assert len(calibration["thresholds"]) == len(LABELS)
    # the best checkpoint is chosen by macro-F1, which history records every epoch
    assert all("f1_macro" in entry for entry in runs.read_jsonl(run_dir / "history.jsonl") if "eval_loss" in entry)


def test_tuned_thresholds_are_applied_the_same_by_torch_onnx_and_a_fresh_process(
    thresholded_run: Any, tmp_path: Path
) -> None:
    texts = ["happy glad the bus", "furious adore darling", "the day was and", "mad angry cheerful happy"]
    classifier = distiltune.load(thresholded_run.dir, precision="fp32")
    thresholds = classifier.calibration.thresholds
    assert thresholds is not None and any(abs(t - 0.5) > 1e-6 for t in thresholds)
    expected = classifier.predict(texts, top_k=3)
    decided = classifier.decide(classifier.predict_proba(texts))
    # The thresholds, not 0.5, made the decisions.
    probabilities = classifier.predict_proba(texts)
    assert (decided == (probabilities >= np.asarray(thresholds))).all()

    from distiltune.export import export_run

    export_run(thresholded_run.dir, output=tmp_path / "onnx", min_agreement=0.0)
    onnx = distiltune.load(thresholded_run.dir, backend="onnx", export_dir=tmp_path / "onnx")
    assert [r["labels"] for r in onnx.predict(texts, top_k=3)] == [r["labels"] for r in expected]
    assert onnx.calibration == classifier.calibration

    script = (
        "import json, sys, distiltune\n"
        "c = distiltune.load(sys.argv[1], precision='fp32')\n"
        "print(json.dumps(c.predict(json.loads(sys.argv[2]), top_k=3)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(thresholded_run.dir), json.dumps(texts)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected


def test_the_server_marks_each_selected_label_and_the_client_matches_predict(
    thresholded_run: Any, live_server: Any
) -> None:
    import httpx

    classifier = distiltune.load(thresholded_run.dir, precision="fp32")
    texts = ["happy glad the bus", "furious adore darling", "the day was and"]
    with live_server(classifier) as url:
        info = httpx.get(f"{url}/info").json()
        assert info["multi_label"] is True and info["problem_type"] == "multi_label_classification"
        assert info["decision_thresholds"] == pytest.approx(list(classifier.calibration.thresholds))
        answer = httpx.post(f"{url}/predict", json={"inputs": texts}).json()
        expected = classifier.predict(texts, top_k=len(LABELS))
        for served, local in zip(answer, expected, strict=True):
            assert [e["label"] for e in served if e["selected"]] == local["labels"]
            assert sum(e["score"] for e in served) != pytest.approx(1.0, abs=1e-3) or len(local["labels"]) != 1
        raw = httpx.post(f"{url}/predict", json={"inputs": texts[0], "raw_scores": True}).json()
        assert [e["label"] for e in raw if e["selected"]] == expected[0]["labels"]
        with distiltune.Client(url) as client:
            assert client.predict(texts, top_k=len(LABELS)) == expected


@pytest.mark.parametrize("method", ["lora", "prompt", "prefix", "head", "untuned"])
def test_every_trainer_method_trains_multi_label(
    tiny_encoders: Any, emotions: Path, tmp_path: Path, method: str
) -> None:
    # prefix tuning needs an encoder that takes past key values: BERT's, not DistilBERT's
    model = str(tiny_encoders["bert" if method == "prefix" else "distilbert"])
    run = distiltune.train(None, overrides(model, emotions, tmp_path, **{"method.name": method, "train.epochs": 1}))
    assert runs.read_model_info(run.dir / "model")["task"] == "multi_label"
    assert run.metrics["test"]["f1_macro"] is not None
    assert distiltune.load(run.dir).predict(["happy"])[0].keys() >= {"labels", "scores"}


def test_tfidf_learns_one_vs_rest(tiny_model: str, emotions: Path, tmp_path: Path) -> None:
    run = distiltune.train(None, overrides(tiny_model, emotions, tmp_path, **{"method.name": "tfidf"}))
    assert run.metrics["test"]["f1_macro"] > 0.9
    predicted = distiltune.load(run.dir).predict(["happy glad and the bus", "furious darling adore", "the day"])
    assert [row["labels"] for row in predicted] == [["joy"], ["love", "anger"], []] or [
        sorted(row["labels"]) for row in predicted
    ] == [["joy"], ["anger", "love"], []]


def test_compare_reports_macro_f1_and_a_recommendation(tiny_model: str, emotions: Path, tmp_path: Path) -> None:
    comparison = distiltune.compare(
        None,
        overrides(tiny_model, emotions, tmp_path / "runs", **{"train.epochs": 1}),
        methods="full,tfidf",
        seeds=1,
        output_dir=tmp_path / "compare",
    )
    assert {row["method"] for row in comparison.table} == {"full", "tfidf"}
    assert all(row["seeds_completed"] == 1 and row["f1_macro"] is not None for row in comparison.table)
    assert comparison.recommendation and "f1_macro" in json.dumps(comparison.recommendation)


def test_the_cli_reads_label_columns_and_refuses_a_missing_one_in_one_line(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    frame = pd.DataFrame(
        [{"text": row["text"], **{name: int(name in row["labels"]) for name in LABELS}} for row in rows(60, 3)]
    )
    frame.to_csv(tmp_path / "train.csv", index=False)
    base = ["train", "--dataset", str(tmp_path / "train.csv"), "--model", tiny_model, "--epochs", "1"]
    base += ["--max-length", "16", "--output-dir", str(tmp_path / "runs")]
    result = CliRunner().invoke(app, [*base, "--label-columns", ",".join(LABELS), "--name", "columns"])
    assert result.exit_code == 0, result.output
    assert runs.read_model_info(tmp_path / "runs" / "columns" / "model")["id2label"] == {
        "0": "anger",
        "1": "joy",
        "2": "love",
    }
    broken = [sys.executable, "-m", "distiltune", *base, "--label-columns", "anger,joy,hate", "--name", "broken"]
    result = subprocess.run(broken, capture_output=True, text=True, timeout=300)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr
    assert "no label column 'hate'" in errors[0]
    assert not (tmp_path / "runs" / "broken").exists()


def test_long_texts_in_windows_and_sentence_pairs_train_multi_label(tiny_model: str, tmp_path: Path) -> None:
    pairs = [
        {"premise": row["text"], "hypothesis": " ".join(reversed(row["text"].split())), **row} for row in rows(80, 4)
    ]
    for split, part in (("train", pairs[:60]), ("validation", pairs[60:])):
        (tmp_path / "pairs").mkdir(exist_ok=True)
        (tmp_path / "pairs" / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in part) + "\n")
    settings = {"train.epochs": 1, "data.text_column": "premise", "data.text_pair_column": "hypothesis"}
    run = distiltune.train(None, overrides(tiny_model, tmp_path / "pairs", tmp_path / "runs", **settings))
    classifier = distiltune.load(run.dir)
    assert classifier.is_pair and classifier.predict(["happy"], ["glad"])[0].keys() >= {"labels", "scores"}

    chunked = {"train.epochs": 1, "data.long_text": "chunks", "data.max_length": 8, "data.stride": 2}
    run = distiltune.train(None, overrides(tiny_model, tmp_path / "pairs", tmp_path / "runs", **chunked))
    assert run.metrics["train_windows"] > run.metrics["train_rows"]  # texts were read in several windows
    long_text = " ".join(["happy glad cheerful furious"] * 6)
    (result,) = distiltune.load(run.dir).predict([long_text])
    assert len(result["scores"]) >= 1 and all(0 <= entry["score"] <= 1 for entry in result["scores"])


def test_tune_searches_a_multi_label_run_by_macro_f1(tiny_model: str, emotions: Path, tmp_path: Path) -> None:
    result = distiltune.tune(
        None,
        overrides(tiny_model, emotions, tmp_path / "runs", **{"train.epochs": 1}),
        trials=2,
        space={"train.lr": {"type": "float", "low": 1e-3, "high": 5e-3, "log": True}},
        output_dir=tmp_path / "tune",
        pruner="none",
    )
    assert result.metric == "f1_macro" and result.counts["complete"] == 2
    assert all(row["value"] is not None for row in result.trials)
