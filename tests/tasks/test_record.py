"""metrics.json as a typed record (distiltune.tasks.record): files of earlier versions parse and write back byte for
byte, both trainers' records keep their key order, and the readers' accessors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distiltune.errors import RunError
from distiltune.tasks.record import RunMetrics, SplitMetrics, evaluated_splits

OLD_RUNS = Path(__file__).resolve().parent.parent / "fixtures" / "old_runs"
OLD_METRICS = sorted(OLD_RUNS.glob("*/metrics.json"))


def as_written(record: RunMetrics) -> str:
    """What finish_run writes for ``record`` (runs.write_json's format)."""
    return json.dumps(record.to_json(), indent=2, ensure_ascii=False) + "\n"


def split(accuracy: float = 0.75) -> dict:
    return {
        "accuracy": accuracy,
        "samples": 4,
        "precision_macro": 0.5,
        "recall_macro": 0.5,
        "f1_macro": 0.5,
        "precision_weighted": 0.5,
        "recall_weighted": 0.5,
        "f1_weighted": 0.5,
        "per_class": {"neg": {"precision": 1.0, "recall": 0.5, "f1": 0.6666666666666666, "support": 2}},
        "confusion_matrix": {"labels": ["neg", "pos"], "matrix": [[1, 1], [0, 2]]},
        "eval_samples_per_second": 12.5,
        "loss": 0.5,
        "calibration": None,
    }


def facts() -> dict:
    return {
        "best_step": 1,
        "best_epoch": 1.0,
        "train_seconds": 0.25,
        "train_samples_per_second": 40.0,
        "train_rows": 10,
        "data_fingerprint": {"train": "ab", "validation": "cd", "test": None},
        "peak_memory": {"peak_memory_mb": 300.5, "peak_memory_increase_mb": 1.5, "peak_memory_kind": "rss"},
    }


def test_old_fixtures_are_present() -> None:
    assert {path.parent.name for path in OLD_METRICS} >= {"completed_full", "completed_tfidf", "uninterrupted_metrics"}


@pytest.mark.parametrize("path", OLD_METRICS, ids=lambda path: path.parent.name)
def test_metrics_of_earlier_versions_parse_and_write_back_byte_for_byte(path: Path) -> None:
    record = RunMetrics.read(path)
    assert as_written(record) == path.read_text(encoding="utf-8")
    assert record.validation is not None and record.validation.accuracy == record.to_json()["validation"]["accuracy"]
    assert record.evaluated_split == "validation" and record.evaluation() is record.validation


def test_old_tfidf_run_keeps_its_method_facts_between_parameters_and_memory() -> None:
    record = RunMetrics.read(OLD_RUNS / "completed_tfidf" / "metrics.json")
    assert record.model == "tfidf" and record.method_facts() == {"tfidf_features": record.value("tfidf_features")}
    keys = list(record.to_json())
    assert keys.index("trainable_percent") + 1 == keys.index("tfidf_features") == keys.index("peak_memory_mb") - 1


def test_encoder_record_is_in_the_order_runs_have_always_written() -> None:
    record = RunMetrics.build(
        method="full",
        model="tiny",
        dataset="tiny.csv",
        metric_for_best="f1_macro",
        splits={"validation": split(), "test": split(0.5)},
        predictions_split="test",
        fits={},
        train_windows=12,
        token_fingerprint="ef",
        method_facts={
            "trainable_params": 5,
            "total_params": 10,
            "trainable_percent": 50.0,
            "device": "cpu",
            "precision": "fp32",
        },
        **facts(),
    )
    assert list(record.to_json()) == [
        "method",
        "model",
        "dataset",
        "metric_for_best",
        "validation",
        "test",
        "predictions_split",
        "best_step",
        "best_epoch",
        "train_seconds",
        "train_samples_per_second",
        "train_rows",
        "train_windows",
        "data_fingerprint",
        "token_fingerprint",
        "trainable_params",
        "total_params",
        "trainable_percent",
        "peak_memory_mb",
        "peak_memory_increase_mb",
        "peak_memory_kind",
        "device",
        "precision",
    ]
    assert list(record.to_json()["test"]) == list(split())  # a split keeps its order too, calibration: null included
    assert record.evaluated_split == "test" and record.evaluation().accuracy == 0.5


def test_method_record_takes_its_facts_in_place() -> None:
    fits = {
        "temperature": {
            "value": 1.5,
            "nll_before": 0.7,
            "nll_after": 0.6,
            "optimum": 1.5,
            "accepted": True,
            "at_bound": False,
            "rows": 4,
            "bounds": [0.05, 20.0],
            "split": "validation",
        }
    }
    record = RunMetrics.build(
        method="tfidf",
        model="/models/tiny",
        dataset="tiny.csv",
        metric_for_best="f1_macro",
        splits={"validation": split()},
        predictions_split="validation",
        fits=fits,
        # TF-IDF's facts name its model (in the place of the encoder's name), then its own facts.
        method_facts={
            "model": "tfidf",
            "trainable_params": 8,
            "tfidf_features": 3,
            "device": "cpu",
            "precision": "fp64",
        },
        **facts(),
    )
    written = record.to_json()
    assert written["model"] == "tfidf" and list(written)[:4] == ["method", "model", "dataset", "metric_for_best"]
    keys = list(written)
    assert keys[keys.index("predictions_split") + 1] == "temperature" and "token_fingerprint" not in keys
    assert keys[-6:] == [
        "tfidf_features",
        "peak_memory_mb",
        "peak_memory_increase_mb",
        "peak_memory_kind",
        "device",
        "precision",
    ]
    assert record.temperature is not None and record.temperature.value == 1.5
    assert as_written(RunMetrics.from_dict(json.loads(as_written(record)))) == as_written(record)


def test_split_values_by_name() -> None:
    metrics = SplitMetrics.model_validate({**split(), "hamming_loss": 0.25, "note": "text"})
    assert metrics.value("accuracy") == 0.75 and metrics.value("hamming_loss") == 0.25  # a task's own metric
    assert metrics.value("f1") is None and metrics.value("note") is None and metrics.value("per_class") is None
    assert list(metrics.to_json())[-2:] == ["hamming_loss", "note"]


def test_evaluated_splits_of_a_run_and_of_an_evaluation() -> None:
    run = {"method": "full", "validation": split(), "test": split(0.5)}
    assert list(evaluated_splits(run)) == ["validation", "test"]
    assert list(evaluated_splits(RunMetrics.from_dict(run))) == ["validation", "test"]
    evaluation = {"evaluation": {"dataset": "new.csv", **split(0.25)}}
    assert evaluated_splits(evaluation)["evaluation"].accuracy == 0.25


def test_a_damaged_metrics_file_is_one_line_naming_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"method": "full", "validation": {"accuracy": "high"}}))
    with pytest.raises(RunError, match=r"metrics.json: validation.accuracy: .*'high'") as raised:
        RunMetrics.read(path)
    assert "\n" not in str(raised.value)
    path.write_text("{not json")
    with pytest.raises(RunError, match="not valid JSON"):
        RunMetrics.read(path)


def test_a_record_names_its_task_only_when_given_one() -> None:
    common = {
        "method": "full",
        "model": "tiny",
        "dataset": "tiny.csv",
        "metric_for_best": "f1_macro",
        "splits": {"validation": split()},
        "predictions_split": "validation",
        "fits": {},
        "method_facts": {},
        **facts(),
    }
    assert "task" not in RunMetrics.build(**common).to_json()  # single-label runs never named their task
    named = RunMetrics.build(**common, task="multi_label").to_json()
    assert list(named)[3:6] == ["metric_for_best", "task", "validation"] and named["task"] == "multi_label"
