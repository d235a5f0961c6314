"""Real-world text end to end (issue 18), through ``distiltune.train`` / ``load`` / ``evaluate`` / ``export`` and the
HTTP server: a run that reads long documents in windows (``data.long_text=chunks``) with a fitted temperature, and
a run on imbalanced labels with class weights and a tuned decision threshold. Each run trains once per module."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import torch
from make_fixtures import FILLER, NEGATIVE, POSITIVE
from transformers import TrainerCallback

import distiltune
from distiltune import runs
from distiltune.cli import main
from distiltune.config import Config
from distiltune.data.long_text import LongTextOptions, encode_documents
from distiltune.export import export_run
from distiltune.inference.batched import InferenceSettings, predict_logits
from distiltune.tasks.metrics import softmax
from distiltune.tasks.single_label import classification_metrics

CHUNKS = LongTextOptions("chunks", stride=2, max_windows=3)
MAX_LENGTH = 8


def documents(count: int, seed: int, noise: float = 0.0) -> pd.DataFrame:
    """Reviews of 2 to 12 words, every other one a sentiment keyword, so that each window holds evidence;
    ``noise`` of the labels drawn at random."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        label = "pos" if index % 2 == 0 else "neg"
        words: list[str] = []
        for _ in range(rng.randint(1, 6)):
            part = rng.sample(FILLER, 1)
            part.insert(rng.randrange(2), rng.choice(POSITIVE if label == "pos" else NEGATIVE))
            words += part
        if rng.random() < noise:
            label = rng.choice(["pos", "neg"])
        rows.append({"text": " ".join(words), "label": label})
    return pd.DataFrame(rows)


def labelled(scores: np.ndarray) -> dict[str, float]:
    return {"neg": float(scores[0]), "pos": float(scores[1])}


class DocumentScores(TrainerCallback):
    """At every evaluation of the Trainer, the document-level scores that the batched inference path gives the model
    in its state of that moment, next to the Trainer's own."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.seen: list[tuple[dict[str, float], dict[str, Any]]] = []

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
        model, tokenizer = kwargs["model"], kwargs["processing_class"]
        settings = InferenceSettings(MAX_LENGTH, batch_size=64, long_text=CHUNKS)
        logits = predict_logits(model, tokenizer, self.frame["text"].tolist(), None, settings)
        gold = (self.frame["label"] == "pos").astype(int).to_numpy()
        self.seen.append((dict(metrics), classification_metrics(gold, logits.argmax(axis=-1), ["neg", "pos"])))


@pytest.fixture(scope="module")
def long_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("long-documents")
    documents(32, 1).to_csv(folder / "train.csv", index=False)
    # Some labels at random on validation: the model's confidence is then too high, and a temperature fits.
    documents(48, 2, noise=0.3).to_csv(folder / "validation.csv", index=False)
    documents(12, 3).to_csv(folder / "test.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def chunks_training(tiny_model: str, long_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    scores = DocumentScores(pd.read_csv(long_data / "validation.csv"))
    run = distiltune.train(
        None,
        {
            "model.name": tiny_model,
            "data.dataset": str(long_data),
            "data.max_length": MAX_LENGTH,
            "data.long_text": "chunks",
            "data.stride": CHUNKS.stride,
            "data.max_windows": CHUNKS.max_windows,
            "train.epochs": 5,
            "train.batch_size": 4,
            "train.lr": 1e-2,
            "train.warmup_fraction": 0.0,
            "train.precision": "fp32",
            "train.calibrate": "temperature",
            "run.output_dir": str(tmp_path_factory.mktemp("runs")),
        },
        callbacks=[scores],
    )
    fit = run.metrics["temperature"]
    assert fit["accepted"] and fit["value"] != 1.0, f"the fixture needs a fitted temperature, got {fit}"
    return run, scores


@pytest.fixture(scope="module")
def chunks_run(chunks_training: tuple[Any, Any]) -> Any:
    return chunks_training[0]


@pytest.fixture(scope="module")
def chunks_backends(chunks_run: Any) -> tuple[Any, Any]:
    """The chunks run through PyTorch and through its fp32 ONNX export."""
    export_run(chunks_run.dir, min_agreement=0.99)
    return chunks_run.load(precision="fp32"), distiltune.load(chunks_run.dir, backend="onnx")


def test_a_chunks_run_records_its_reading_and_predicts_one_row_per_document(chunks_run: Any, long_data: Path) -> None:
    config = chunks_run.config.data
    assert (config.long_text, config.stride, config.max_windows) == ("chunks", 2, 3)
    saved = Config.from_yaml(chunks_run.dir / runs.CONFIG_FILE)
    assert saved.data.long_text_options() == CHUNKS
    metrics = chunks_run.metrics
    assert metrics["train_rows"] == 32 and metrics["train_windows"] > 32
    test = pd.read_csv(long_data / "test.csv")
    rows = runs.read_jsonl(chunks_run.dir / runs.PREDICTIONS_FILE)
    assert [row["text"] for row in rows] == test["text"].tolist()  # one row per document, in order
    assert metrics["test"]["samples"] == len(test)
    assert "windows per text" in (chunks_run.dir / runs.LOG_FILE).read_text()


def test_the_trainers_evaluation_scores_documents_in_their_order(chunks_training: tuple[Any, Any]) -> None:
    run, scores = chunks_training
    assert len(scores.seen) == 5
    for trainer_metrics, documents_scored in scores.seen:
        assert trainer_metrics["eval_accuracy"] == pytest.approx(documents_scored["accuracy"])
        assert trainer_metrics["eval_f1_macro"] == pytest.approx(documents_scored["f1_macro"])
    # The best checkpoint's row in history.jsonl is the document-level score of the model the run kept.
    best = max(run.history, key=lambda row: row["f1_macro"])
    assert best["accuracy"] == pytest.approx(run.metrics["validation"]["accuracy"])


def test_chunked_logits_are_the_mean_of_the_documents_windows(chunks_backends: tuple[Any, Any]) -> None:
    torch_classifier, _ = chunks_backends
    text = " ".join(["great fun the movie"] * 6)  # 24 tokens: more windows than max_windows allows
    windows = encode_documents(torch_classifier.tokenizer, [text], max_length=MAX_LENGTH, options=CHUNKS)
    assert len(windows) == CHUNKS.max_windows
    with torch.inference_mode():
        each = [
            torch_classifier.model(**{key: torch.tensor([values[i]]) for key, values in windows.columns.items()})
            .logits[0]
            .numpy()
            for i in range(len(windows))
        ]
    logits = torch_classifier.predict_logits([text, "dull", text])
    assert logits.shape == (3, 2)
    np.testing.assert_allclose(logits[0], np.mean(each, axis=0), atol=1e-5)
    np.testing.assert_allclose(logits[2], logits[0], atol=1e-6)


def test_torch_onnx_and_evaluate_give_the_same_document_predictions(
    chunks_run: Any, chunks_backends: tuple[Any, Any], long_data: Path
) -> None:
    torch_classifier, onnx_classifier = chunks_backends
    test = pd.read_csv(long_data / "test.csv")
    texts = test["text"].tolist()
    assert max(len(ids) for ids in torch_classifier.tokenizer(texts)["input_ids"]) > MAX_LENGTH
    torch_probabilities = torch_classifier.predict_proba(texts)
    np.testing.assert_allclose(onnx_classifier.predict_proba(texts), torch_probabilities, atol=1e-4)
    assert [r["label"] for r in onnx_classifier.predict(texts)] == [
        r["label"] for r in torch_classifier.predict(texts)
    ]
    rows = runs.read_jsonl(chunks_run.dir / runs.PREDICTIONS_FILE)
    saved = np.array([[row["probabilities"][name] for name in ("neg", "pos")] for row in rows])
    np.testing.assert_allclose(saved, torch_probabilities, atol=2e-6)
    for backend in ("torch", "onnx"):
        output = chunks_run.dir / f"eval-{backend}.json"
        evaluated = distiltune.evaluate(chunks_run.dir, str(long_data / "test.csv"), output=output, backend=backend)
        assert evaluated["accuracy"] == chunks_run.metrics["test"]["accuracy"]
        assert len(runs.read_jsonl(output.with_suffix(".predictions.jsonl"))) == len(texts)


def test_the_server_reads_long_inputs_in_windows_as_the_classifier_does(
    chunks_backends: tuple[Any, Any], long_data: Path, live_server: Any
) -> None:
    texts = pd.read_csv(long_data / "test.csv")["text"].tolist()[:6]
    for classifier in chunks_backends:
        expected = classifier.predict(texts, top_k=2)
        with live_server(classifier) as url:
            # truncate: false refuses an input over the max length of a head run; a chunks run reads it whole.
            served = httpx.post(f"{url}/predict", json={"inputs": texts, "truncate": False}, timeout=30)
            assert served.status_code == 200, served.text
            for direction in ("left", "right"):  # nothing is cut, so no direction changes the answer
                turned = httpx.post(f"{url}/predict", json={"inputs": texts, "truncation_direction": direction})
                assert turned.json() == served.json()
            raw = httpx.post(f"{url}/predict", json={"inputs": texts, "raw_scores": True}).json()
        for row, want in zip(served.json(), expected, strict=True):
            assert row[0]["label"] == want["label"]
            assert [s["score"] for s in row] == pytest.approx([s["score"] for s in want["scores"]], abs=1e-6)
        logits = classifier.predict_logits(texts)
        for row, want in zip(raw, logits, strict=True):
            assert {s["label"]: s["score"] for s in row} == pytest.approx(labelled(want), abs=1e-5)


def test_the_temperature_is_saved_reported_and_applied_by_every_predictor(
    chunks_run: Any, chunks_backends: tuple[Any, Any], live_server: Any
) -> None:
    metrics = chunks_run.metrics
    temperature = metrics["temperature"]["value"]
    saved = json.loads((chunks_run.dir / runs.MODEL_DIR / runs.CALIBRATION_FILE).read_text())
    assert saved["temperature"] == temperature and saved["threshold"] is None
    exported = json.loads((chunks_run.dir / "export" / "onnx" / runs.CALIBRATION_FILE).read_text())
    assert exported == saved
    assert metrics["temperature"]["nll_after"] < metrics["temperature"]["nll_before"]
    for split in ("validation", "test"):
        after, before = metrics[split]["calibration"], metrics[split]["before_calibration"]
        assert {"ece", "brier", "nll", "reliability"} <= set(after) & set(before)
        assert before["accuracy"] == metrics[split]["accuracy"]  # T > 0 keeps every argmax
    assert metrics["validation"]["calibration"]["nll"] < metrics["validation"]["before_calibration"]["nll"]
    assert (chunks_run.dir / runs.PLOTS_DIR / "reliability.png").stat().st_size > 1000

    texts = ["great fun the movie " * 4, "dull awful plot", "the story was good"]
    for classifier in chunks_backends:
        assert classifier.calibration.temperature == temperature
        logits = classifier.predict_logits(texts)
        probabilities = classifier.predict_proba(texts)
        np.testing.assert_allclose(probabilities, softmax(logits.astype(np.float64) / temperature), atol=1e-6)
        assert not np.allclose(probabilities, softmax(logits), atol=1e-3)
        with live_server(classifier) as url:
            served = httpx.post(f"{url}/predict", json={"inputs": texts}).json()
        for row, want in zip(served, probabilities, strict=True):
            assert {s["label"]: s["score"] for s in row} == pytest.approx(labelled(want), abs=1e-6)


# --- imbalanced labels: class weights and a tuned decision threshold ------------------------------------------------


def keyword_rows(negatives: int, positives: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for label, count in (("neg", negatives), ("pos", positives)):
        for _ in range(count):
            words = rng.sample(FILLER, 2)
            words.insert(rng.randrange(3), rng.choice(POSITIVE if label == "pos" else NEGATIVE))
            rows.append({"text": " ".join(words), "label": label})
    rng.shuffle(rows)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def imbalanced_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("imbalanced")
    keyword_rows(36, 6, 1).to_csv(folder / "train.csv", index=False)
    keyword_rows(16, 4, 2).to_csv(folder / "validation.csv", index=False)
    keyword_rows(16, 4, 3).to_csv(folder / "test.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def threshold_run(tiny_model: str, imbalanced_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    run = distiltune.train(
        None,
        {
            "model.name": tiny_model,
            "data.dataset": str(imbalanced_data),
            "data.max_length": 16,
            "train.epochs": 6,
            "train.batch_size": 4,
            "train.lr": 1e-2,
            "train.warmup_fraction": 0.0,
            "train.metric": "loss",
            "train.precision": "fp32",
            "train.class_weights": {"pos": 3},
            "train.tune_threshold": True,
            "run.output_dir": str(tmp_path_factory.mktemp("runs")),
        },
    )
    export_run(run.dir, min_agreement=0.99)
    return run


def test_the_summary_warns_about_imbalance_naming_the_options(threshold_run: Any) -> None:
    log = (threshold_run.dir / runs.LOG_FILE).read_text()
    assert "Imbalanced training labels: 'neg' has 6.0x the rows of 'pos'" in log
    for option in ("--class-weights balanced", "--loss focal", "--tune-threshold"):
        assert option in log
    assert threshold_run.config.train.class_weights == {"pos": 3}


def test_a_tuned_threshold_is_saved_reloaded_and_applied(threshold_run: Any, imbalanced_data: Path) -> None:
    metrics = threshold_run.metrics
    threshold = metrics["threshold"]["value"]
    assert (metrics["threshold"]["label"], metrics["threshold"]["metric"]) == ("pos", "f1")  # the minority's F1
    saved = json.loads((threshold_run.dir / runs.MODEL_DIR / runs.CALIBRATION_FILE).read_text())
    assert (saved["threshold"], saved["threshold_label_id"], saved["temperature"]) == (threshold, 1, 1.0)
    assert "before_threshold" in metrics["test"] and "temperature" not in metrics

    texts = pd.read_csv(imbalanced_data / "test.csv")["text"].tolist()
    classifier = threshold_run.load(precision="fp32")
    assert classifier.calibration.threshold == threshold
    probabilities = classifier.predict_proba(texts)
    thresholded = np.where(probabilities[:, 1] >= threshold, "pos", "neg")
    results = classifier.predict(texts)
    assert [r["label"] for r in results] == thresholded.tolist()
    assert (thresholded != np.array(["neg", "pos"])[probabilities.argmax(axis=1)]).any(), "no row tests the rule"
    assert all(r["threshold"] == {"label": "pos", "value": round(threshold, 6)} for r in results)
    assert all(len(r["scores"]) == 2 for r in results)  # the raw scores of both labels
    rows = runs.read_jsonl(threshold_run.dir / runs.PREDICTIONS_FILE)
    assert [row["predicted"] for row in rows] == thresholded.tolist()


def test_the_threshold_is_applied_by_onnx_serve_and_predict(
    threshold_run: Any, imbalanced_data: Path, live_server: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    texts = pd.read_csv(imbalanced_data / "test.csv")["text"].tolist()
    expected = [r["label"] for r in threshold_run.load(precision="fp32").predict(texts)]
    as_cli_loads = [r["label"] for r in distiltune.load(threshold_run.dir).predict(texts[:4])]  # default precision
    onnx_classifier = distiltune.load(threshold_run.dir, backend="onnx")
    assert [r["label"] for r in onnx_classifier.predict(texts)] == expected
    with live_server(onnx_classifier) as url:
        served = httpx.post(f"{url}/predict", json={"inputs": texts}).json()
        top = httpx.post(f"{url}/predict", json={"inputs": texts, "top_k": 1, "raw_scores": True}).json()
    assert [row[0]["label"] for row in served] == expected  # the decided label first, as Classifier.predict's
    assert [row[0]["label"] for row in top] == expected
    monkeypatch.setattr(sys, "argv", ["distiltune", "predict", str(threshold_run.dir), *texts[:4]])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code in (0, None)
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["label"] for row in printed] == as_cli_loads
    assert all(row["threshold"]["label"] == "pos" and len(row["scores"]) == 2 for row in printed)
