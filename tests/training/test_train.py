"""End-to-end training on tiny models: run-directory contract, learning, best checkpoint, architectures, pairs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import yaml
from make_fixtures import NEGATIVE, POSITIVE

import distiltune
from distiltune import runs
from distiltune.tasks.calibration import calibration_metrics

RUN_FILES = {
    "config.yaml",
    "env.json",
    "metrics.json",
    "history.jsonl",
    "predictions.jsonl",
    "train.log",
    "model",
    "plots",
    "checkpoints",
    "status.json",
}


def test_run_directory_holds_every_file_and_each_parses(fast_overrides: dict) -> None:
    run = distiltune.train(None, fast_overrides)
    assert {p.name for p in run.dir.iterdir()} == RUN_FILES
    name = run.dir.name
    assert name.split("_")[-3:] == ["distilbert", "tiny", "full"]
    config = yaml.safe_load((run.dir / "config.yaml").read_text())
    assert config["data"]["text_column"] == "review" and config["data"]["label_names"] == ["neg", "pos"]
    assert config["train"]["lr"] == pytest.approx(1e-3) and config["train"]["metric"] == "f1_macro"
    history = runs.read_jsonl(run.dir / "history.jsonl")
    assert [row["epoch"] for row in history] == [1.0, 2.0]
    for row in history:
        assert {"step", "train_loss", "eval_loss", "accuracy", "precision_macro", "recall_macro", "f1_macro"} <= set(
            row
        )
    metrics = json.loads((run.dir / "metrics.json").read_text())
    validation = metrics["validation"]
    for key in (
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "precision_weighted",
        "recall_weighted",
        "f1_weighted",
        "precision",
        "recall",
        "f1",
        "per_class",
        "confusion_matrix",
    ):
        assert key in validation, key
    assert set(validation["per_class"]) == {"neg", "pos"}
    assert sum(map(sum, validation["confusion_matrix"]["matrix"])) == validation["samples"] == 6
    assert metrics["train_seconds"] > 0 and metrics["train_samples_per_second"] > 0
    predictions = runs.read_jsonl(run.dir / "predictions.jsonl")
    assert len(predictions) == 6
    assert set(predictions[0]) >= {"text", "gold", "predicted", "probabilities"}
    assert sum(predictions[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert {p.name for p in (run.dir / "plots").iterdir()} == {
        "loss.png",
        "accuracy_f1.png",
        "confusion_matrix.png",
        "reliability.png",
    }
    assert all((run.dir / "plots" / name).stat().st_size > 1000 for name in ("loss.png", "confusion_matrix.png"))
    # Every evaluation carries its calibration (ECE over 15 bins, Brier, NLL), as computed from its own predictions.
    gold_ids = np.array([["neg", "pos"].index(row["gold"]) for row in predictions])
    probabilities = np.array([[row["probabilities"][name] for name in ("neg", "pos")] for row in predictions])
    reported = metrics["test" if "test" in metrics else "validation"]["calibration"]
    assert reported["bins"] == 15 and sum(reported["reliability"]["count"]) == len(predictions)
    for key, value in calibration_metrics(probabilities, gold_ids).items():
        assert reported[key] == pytest.approx(value, abs=1e-5), key
    # Nothing was fitted: no calibration file, no fit reports, and the config records the default reading.
    assert "temperature" not in metrics and "threshold" not in metrics
    assert config["data"]["long_text"] == "head" and config["train"]["calibrate"] == "none"
    model_files = {p.name for p in (run.dir / "model").iterdir()}
    assert "calibration.json" not in model_files
    assert {"model.safetensors", "config.json", "labels.json", "tokenizer.json"} <= model_files
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in model_files)
    saved_config = json.loads((run.dir / "model" / "config.json").read_text())
    assert saved_config["id2label"] == {"0": "neg", "1": "pos"} and saved_config["label2id"] == {"neg": 0, "pos": 1}
    assert "Dataset" in (run.dir / "train.log").read_text()


def test_existing_run_directory_is_never_overwritten(fast_overrides: dict) -> None:
    from distiltune.errors import RunError

    first = distiltune.train(None, {**fast_overrides, "run.name": "fixed", "train.max_steps": 1})
    marker = first.dir / "metrics.json"
    before = marker.read_text()
    with pytest.raises(RunError, match="already exists"):
        distiltune.train(None, {**fast_overrides, "run.name": "fixed", "train.max_steps": 1})
    assert marker.read_text() == before


def test_user_callbacks_see_every_training_step(fast_overrides: dict) -> None:
    from transformers import TrainerCallback

    class StepRecorder(TrainerCallback):
        def __init__(self) -> None:
            self.steps: list[int] = []
            self.ended = False

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
            self.steps.append(state.global_step)

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
            self.ended = True

    recorder = StepRecorder()
    run = distiltune.train(None, {**fast_overrides, "train.max_steps": 3}, callbacks=[recorder])
    assert recorder.steps == [1, 2, 3]
    assert recorder.ended
    assert run.history[-1]["step"] == 3  # distiltune's own callbacks still ran


def keyword_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        words = rng.sample(["the", "movie", "film", "was", "plot", "acting", "story", "this", "it", "is"], 5)
        words.insert(rng.randrange(len(words)), rng.choice(POSITIVE if positive else NEGATIVE))
        rows.append({"text": " ".join(words), "label": "pos" if positive else "neg"})
    return rows


def test_training_really_learns_keyword_separable_data(tmp_path: Path, tiny_model: str) -> None:
    for split, n, seed in (("train", 160, 1), ("validation", 40, 2), ("test", 60, 3)):
        with (tmp_path / f"{split}.jsonl").open("w") as handle:
            for row in keyword_rows(n, seed):
                handle.write(json.dumps(row) + "\n")
    run = distiltune.train(
        None,
        {
            "model.name": tiny_model,
            "data.dataset": str(tmp_path),
            "data.max_length": 16,
            "train.epochs": 8,
            "train.batch_size": 8,
            "train.lr": 3e-3,
            "train.precision": "fp32",
            "train.warmup_fraction": 0.0,
            "run.output_dir": str(tmp_path / "runs"),
        },
    )
    history = runs.read_jsonl(run.dir / "history.jsonl")
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert run.metrics["test"]["accuracy"] >= 0.95, run.metrics["test"]
    assert run.metrics["test"]["samples"] == 60


def test_best_checkpoint_is_the_best_history_row(fast_overrides: dict) -> None:
    overrides = {**fast_overrides, "train.epochs": 4, "train.lr": 2e-3, "train.metric": "loss"}
    run = distiltune.train(None, overrides)
    history = runs.read_jsonl(run.dir / "history.jsonl")
    best = min(history, key=lambda row: row["eval_loss"])
    assert run.metrics["best_step"] == best["step"]
    # The saved model is that checkpoint: re-evaluating it reproduces the row's accuracy.
    assert run.metrics["validation"]["accuracy"] == pytest.approx(best["accuracy"])
    checkpoints = sorted(p.name for p in (run.dir / "checkpoints").iterdir())
    last = f"checkpoint-{history[-1]['step']}"
    assert set(checkpoints) == {f"checkpoint-{best['step']}", last}


@pytest.mark.parametrize("architecture", ["distilbert", "bert", "roberta"])
def test_each_architecture_trains_and_predicts(architecture: str, tiny_encoders: dict, fast_overrides: dict) -> None:
    run = distiltune.train(
        None, {**fast_overrides, "model.name": str(tiny_encoders[architecture]), "train.max_steps": 3}
    )
    classifier = run.load()
    result = classifier.predict(["the movie was great"], top_k=2)[0]
    assert result["label"] in ("neg", "pos")
    scores = [s["score"] for s in result["scores"]]
    assert scores == sorted(scores, reverse=True) and result["label"] == result["scores"][0]["label"]
    assert sum(s["score"] for s in result["scores"]) == pytest.approx(1.0, abs=1e-4)


def test_sentence_pairs_end_to_end(fixtures_dir: Path, fast_overrides: dict) -> None:
    run = distiltune.train(
        None,
        {
            **fast_overrides,
            "data.dataset": str(fixtures_dir / "pairs.tsv"),
            "data.text_column": None,
            "data.label_column": None,
        },
    )
    assert run.config.data.text_column == "premise" and run.config.data.text_pair_column == "hypothesis"
    predictions = runs.read_jsonl(run.dir / "predictions.jsonl")
    assert "text_pair" in predictions[0]
    classifier = run.load()
    assert classifier.is_pair
    result = classifier.predict(["the man runs"], pairs=["a man runs"], top_k=2)[0]
    assert {s["label"] for s in result["scores"]} == {"contradiction", "entailment"}


def test_early_stopping_stops_when_the_metric_stalls(fast_overrides: dict) -> None:
    # A vanishing learning rate leaves the metric unchanged, so patience 1 stops after the second evaluation.
    run = distiltune.train(
        None, {**fast_overrides, "train.epochs": 6, "train.lr": 1e-12, "train.early_stopping_patience": 1}
    )
    history = runs.read_jsonl(run.dir / "history.jsonl")
    assert len(history) == 2 and run.metrics["best_epoch"] == 1.0


def test_rerunning_the_resolved_config_repeats_the_run(fast_overrides: dict) -> None:
    first = distiltune.train(None, fast_overrides)
    second = distiltune.train(first.dir / "config.yaml")
    assert second.dir != first.dir
    assert (second.dir / "config.yaml").read_text() == (first.dir / "config.yaml").read_text()
    for split in ("validation",):
        assert second.metrics[split]["accuracy"] == first.metrics[split]["accuracy"]
        assert second.metrics[split]["confusion_matrix"] == first.metrics[split]["confusion_matrix"]
    assert runs.read_jsonl(second.dir / "history.jsonl") == runs.read_jsonl(first.dir / "history.jsonl")


def test_the_dataset_summary_names_the_flags_for_long_and_imbalanced_data(tiny_model: str, caplog) -> None:
    import logging

    import pandas as pd

    from distiltune.data import DataConfig, LabelSpace, PreparedData
    from distiltune.data.long_text import LongTextOptions
    from distiltune.modeling import load_tokenizer
    from distiltune.training.pipeline import log_summary

    long, short = "the movie was great " * 4, "great fun"
    # 3 of 12 training texts are longer than 8 tokens (25% > 20%); 11 negatives to 1 positive (> 5x).
    train = pd.DataFrame({"text": [long] * 3 + [short] * 9, "label": [0] * 11 + [1]})
    data = PreparedData(
        train, train.head(2), None, LabelSpace(["neg", "pos"], ["neg", "pos"]), DataConfig(dataset="frame")
    )
    tokenizer = load_tokenizer(tiny_model)
    with caplog.at_level(logging.INFO, logger="distiltune"):
        log_summary(data, tokenizer, 8)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "25% of the training texts are longer than 8 tokens" in warnings[0]
    assert "--long-text head_tail" in warnings[0] and "--long-text chunks" in warnings[0]
    assert "'neg' has 11.0x the rows of 'pos'" in warnings[1]
    for flag in ("--class-weights balanced", "--loss focal", "--tune-threshold"):
        assert flag in warnings[1]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="distiltune"):
        log_summary(data, tokenizer, 8, LongTextOptions("chunks", max_windows=4))  # chunks read all of them
    summary = next(r.getMessage() for r in caplog.records if "train" in r.getMessage() and "tokens" in r.getMessage())
    assert f"0 of {len(train)} (0.0%) truncated at 8, chunks" in summary
    assert not any("longer than" in r.getMessage() for r in caplog.records)
