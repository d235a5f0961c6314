"""The calibration and imbalance benchmarks without training: their data preparation on small fake copies of the
SST-2 and IMDb files (the suite never reads ../shared), the metrics they read, and their statistics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import load_benchmark

#: Config keys the benchmarks use that training does not know yet (issue 18's integration adds them).
PLANNED_KEYS = {
    "train.calibrate",
    "train.class_weights",
    "train.loss",
    "train.focal_gamma",
    "train.tune_threshold",
    "train.threshold_metric",
}


@pytest.fixture(scope="module")
def calibration() -> Any:
    return load_benchmark("calibration")


@pytest.fixture(scope="module")
def imbalance(calibration: Any) -> Any:
    return load_benchmark("imbalance")


def sentence(label: int, index: int, words: int) -> str:
    word = "good" if label else "bad"
    return " ".join([f"{word}{index}", 'a "quoted" word'] + ["filler"] * max(0, words - 4))


@pytest.fixture
def fake_data(tmp_path: Path) -> Path:
    """sst2/ (GLUE-style unquoted TSV) and imdb/ (jsonl) with the real files' columns and a few traps."""
    root = tmp_path / "data"
    (root / "sst2").mkdir(parents=True)
    train = [(sentence(i % 2, i, 4 + i % 12), i % 2) for i in range(600)] + [("null", 0), ("nan", 1)]
    test = [(sentence(i % 2, 10_000 + i, 18), i % 2) for i in range(60)]
    train.append(test[0])  # a test sentence that also occurs in train.tsv
    for name, rows in (("train", train), ("test", test)):
        lines = ["sentence\tlabel"] + [f"{text}\t{label}" for text, label in rows]
        (root / "sst2" / f"{name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "imdb").mkdir()
    for name, count in (("train", 300), ("test", 200)):
        rows = [
            {"id": f"{name}_{i}", "text": f"review {i} <br /><br />", "label": i % 2, "rating": 7}
            for i in range(count)
        ]
        (root / "imdb" / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return root


def read_split(folder: Path, split: str) -> pd.DataFrame:
    return pd.read_json(folder / f"{split}.jsonl", lines=True, dtype={"text": str})


# --- calibration benchmark: data ------------------------------------------------------------------------------


def test_sst2_reader_keeps_quotes_and_literal_null(calibration: Any, fake_data: Path) -> None:
    frame = calibration.read_sst2(fake_data / "sst2" / "train.tsv")
    assert len(frame) == 603 and list(frame.columns) == ["text", "label"]
    assert '"quoted"' in frame["text"].iloc[0]
    assert {"null", "nan"} <= set(frame["text"])  # not turned into missing values


def test_sst2_calibration_splits(calibration: Any, fake_data: Path, tmp_path: Path) -> None:
    sizes = calibration.prepare_sst2(fake_data / "sst2", tmp_path / "sst2", train_rows=300, validation_rows=100)
    train, validation, test = (read_split(tmp_path / "sst2", s) for s in ("train", "validation", "test"))
    assert (len(train), len(validation), len(test)) == (300, 100, 60)
    assert sum(sizes["test"].values()) == 60  # the labelled test set is kept whole
    assert (validation["text"].str.split().str.len() >= 10).all()
    assert not set(train["text"]) & set(validation["text"])
    assert not set(test["text"]) & (set(train["text"]) | set(validation["text"]))
    again = tmp_path / "again"
    calibration.prepare_sst2(fake_data / "sst2", again, train_rows=300, validation_rows=100)
    assert read_split(again, "train").equals(train)  # one fixed draw (seed 0) for every training seed


def test_imdb_calibration_splits(calibration: Any, fake_data: Path, tmp_path: Path) -> None:
    sizes = calibration.prepare_imdb(fake_data / "imdb", tmp_path / "imdb", 150, 50, test_rows=120)
    assert {split: sum(counts.values()) for split, counts in sizes.items()} == {
        "train": 150,
        "validation": 50,
        "test": 120,
    }
    train, validation = read_split(tmp_path / "imdb", "train"), read_split(tmp_path / "imdb", "validation")
    assert not set(train["text"]) & set(validation["text"])


def test_prepare_only_writes_the_folders(calibration: Any, fake_data: Path, tmp_path: Path, capsys: Any) -> None:
    calibration.main(
        ["--data", str(fake_data), "--workdir", str(tmp_path / "work"), "--prepare-only"]
        + ["--imdb-train", "100", "--imdb-test", "100", "--sst2-train", "200", "--validation", "50"]
    )
    assert {p.name for p in (tmp_path / "work" / "data").iterdir()} == {"imdb", "sst2"}
    assert '"test": {"negative": 30, "positive": 30}' in capsys.readouterr().out


def test_calibration_overrides_use_known_keys_plus_the_planned_one(calibration: Any, tmp_path: Path) -> None:
    from distiltune.config import load_config

    args = calibration.parse_args(["--set", "train.eval_batch_size=32"])
    overrides = calibration.run_overrides("sst2", tmp_path, 42, args, tmp_path / "runs")
    assert overrides["train.calibrate"] == "temperature" and overrides["train.eval_batch_size"] == 32
    assert set(overrides) & PLANNED_KEYS == {"train.calibrate"}
    config = load_config(None, {k: v for k, v in overrides.items() if k not in PLANNED_KEYS})
    assert config.model.name == "minilm" and config.data.max_length == 64 and config.train.seed == 42


# --- calibration benchmark: what it reads and its statistics -----------------------------------------------------


def fake_metrics(ece_before: float, ece_after: float, accuracy: float = 0.9) -> dict[str, Any]:
    """A metrics.json in the shape the calibration integration is to write (see the design note)."""
    return {
        "temperature": {"value": 1.8, "accepted": True},
        "test": {
            "accuracy": accuracy,
            "calibration": {"bins": 15, "ece": ece_after, "brier": 0.07, "nll": 0.25},
            "before_calibration": {"accuracy": accuracy, "ece": ece_before, "brier": 0.08, "nll": 0.35},
        },
    }


def test_calibration_collect_and_verdicts(calibration: Any) -> None:
    row = calibration.collect(fake_metrics(0.052, 0.008))
    assert row["ece_before"] == pytest.approx(5.2) and row["ece_after"] == pytest.approx(0.8)
    assert row["temperature"] == 1.8 and row["bins"] == 15
    runs = [
        {"dataset": "sst2", "seed": seed, **calibration.collect(fake_metrics(0.05, ece)), "ece_floor": 0.7}
        for seed, ece in ((42, 0.008), (43, 0.011), (44, 0.009))
    ]
    summary = calibration.summarize(runs)["sst2"]
    assert summary["ece_after"]["mean"] == pytest.approx(0.933, abs=1e-3)
    assert summary["target_met"] is True and summary["accuracy_unchanged_in_every_run"] is True
    runs[0]["accuracy_after"] = 0.91
    runs[1]["ece_after"] = 2.0
    summary = calibration.summarize(runs)["sst2"]
    assert summary["target_met"] is False and summary["accuracy_unchanged_in_every_run"] is False


def test_ece_interval_and_floor(calibration: Any) -> None:
    from distiltune.tasks.calibration import expected_calibration_error

    rng = np.random.default_rng(0)
    probabilities = np.clip(rng.beta(8, 1, 1500), 0.5, 0.999)
    probabilities = np.stack([probabilities, 1 - probabilities], axis=1)
    labels = (rng.random(1500) > probabilities[:, 0]).astype(int)  # calibrated by construction
    point = 100 * expected_calibration_error(probabilities, labels)
    low, high = calibration.bootstrap_ece_interval(probabilities, labels, resamples=200)
    assert low < point < high
    floor = calibration.ece_floor(probabilities, draws=50)
    assert 0.2 < floor < 3.0  # a perfect model still reads about a point of ECE on 1,500 rows
    assert calibration.ece_floor(np.tile(probabilities, (8, 1)), draws=20) < floor  # more rows, lower floor


def test_reads_test_predictions(calibration: Any, tmp_path: Path) -> None:
    rows = [
        {"gold": "positive", "probabilities": {"negative": 0.2, "positive": 0.8}},
        {"gold": "negative", "probabilities": {"negative": 0.333333, "positive": 0.666666}},
    ]
    (tmp_path / "predictions.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    probabilities, gold = calibration.read_test_predictions(tmp_path)
    assert gold.tolist() == [1, 0]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


# --- imbalance benchmark ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("minority", ["negative", "positive"])
def test_imbalanced_splits_hold_the_ratio(imbalance: Any, fake_data: Path, tmp_path: Path, minority: str) -> None:
    sizes = imbalance.prepare_imbalanced(fake_data / "sst2", tmp_path / "a", minority, 42, 200, 50)
    majority = "positive" if minority == "negative" else "negative"
    assert sizes["train"] == {majority: 200, minority: 20}
    assert sizes["validation"] == {majority: 50, minority: 5}
    assert sizes["test"] == {majority: 30, minority: 3}  # every majority test sentence, a tenth as many minority
    splits = {s: read_split(tmp_path / "a", s) for s in ("train", "validation", "test")}
    assert not set(splits["train"]["text"]) & set(splits["validation"]["text"])
    assert not set(splits["test"]["text"]) & set(splits["train"]["text"])
    imbalance.prepare_imbalanced(fake_data / "sst2", tmp_path / "b", minority, 42, 200, 50)
    imbalance.prepare_imbalanced(fake_data / "sst2", tmp_path / "c", minority, 43, 200, 50)
    assert read_split(tmp_path / "b", "train").equals(splits["train"])  # a seed fixes its rows...
    assert set(read_split(tmp_path / "c", "test")["text"]) != set(splits["test"]["text"])  # ...each its own


def test_imbalance_overrides(imbalance: Any, tmp_path: Path) -> None:
    from distiltune.config import load_config

    args = imbalance.parse_args([])
    assert args.seeds == "42,43,44,45,46" and args.variants == "none,balanced,focal,threshold"
    for variant, planned in (
        ("none", set()),
        ("balanced", {"train.class_weights"}),
        ("focal", {"train.loss", "train.focal_gamma"}),
        ("threshold", {"train.tune_threshold", "train.threshold_metric"}),
    ):
        overrides = imbalance.run_overrides(tmp_path, variant, 43, args, tmp_path / "runs")
        assert set(overrides) & PLANNED_KEYS == planned
        config = load_config(None, {k: v for k, v in overrides.items() if k not in PLANNED_KEYS})
        assert config.train.metric == "f1_macro" and config.train.seed == 43
    with pytest.raises(SystemExit):
        imbalance.parse_args(["--variants", "balanced"])  # no baseline to pair with


def imbalance_row(minority: str, variant: str, seed: int, f1: float, recall: float) -> dict[str, Any]:
    return {"minority": minority, "variant": variant, "seed": seed, "f1_macro": f1, "minority_recall": recall}


def test_imbalance_collect(imbalance: Any) -> None:
    metrics = {
        "test": {
            "accuracy": 0.93,
            "f1_macro": 0.81,
            "per_class": {"negative": {"recall": 0.62, "precision": 0.7}, "positive": {"recall": 0.97}},
        },
        "threshold": {"value": 0.31, "label": "negative"},
    }
    row = imbalance.collect(metrics, "negative")
    assert row["minority_recall"] == pytest.approx(62.0) and row["f1_macro"] == pytest.approx(81.0)
    assert row["threshold"] == 0.31


def test_imbalance_statistics(imbalance: Any) -> None:
    runs = []
    for seed, (base_f1, base_recall) in zip((42, 43, 44), ((80, 50), (78, 48), (82, 55)), strict=True):
        runs.append(imbalance_row("negative", "none", seed, base_f1, base_recall))
        runs.append(imbalance_row("negative", "balanced", seed, base_f1 + 4, base_recall + 14))
        runs.append(imbalance_row("negative", "focal", seed, base_f1 + 1, base_recall + {42: 1, 43: 9, 44: 2}[seed]))
        runs.append(imbalance_row("negative", "threshold", seed, base_f1 + 1, base_recall + 15))
    summary = imbalance.summarize(runs)["minority_negative"]
    balanced = summary["balanced"]["versus_none"]
    assert balanced["minority_recall"]["mean"] == pytest.approx(14.0)
    assert balanced["minority_recall"]["sd"] == pytest.approx(0.0)
    assert balanced["target_met"] and balanced["target_shown"] and balanced["improvement_shown"]
    focal = summary["focal"]["versus_none"]
    assert focal["minority_recall"]["mean"] == pytest.approx(4.0)
    # mean 4, sd 4.36, n 3: 4 - t(0.95, 2) * 4.36 / sqrt(3) = 4 - 2.92 * 2.52
    assert focal["minority_recall"]["lower_95"] == pytest.approx(4 - 2.919986 * 4.358899 / 3**0.5, rel=1e-5)
    assert not focal["target_met"] and not focal["improvement_shown"]
    threshold = summary["threshold"]["versus_none"]  # recall up 15, macro-F1 only 1: both margins are needed
    assert not threshold["target_met"] and not threshold["target_shown"] and threshold["improvement_shown"]
    assert summary["none"]["f1_macro"]["mean"] == pytest.approx(80.0)
    table = imbalance.format_table(imbalance.summarize(runs))
    assert "minority_negative   balanced           84.0 +-  2.0    65.0 +-  3.6    +4.0    +14.0  met" in table
    single = imbalance.format_table(imbalance.summarize(runs[:1]))
    assert "80.0 +-    -" in single  # one seed has no sd


def test_imbalance_pairs_only_seeds_with_a_baseline(imbalance: Any) -> None:
    runs = [
        imbalance_row("positive", "none", 42, 80, 50),
        imbalance_row("positive", "threshold", 42, 84, 65),
        imbalance_row("positive", "threshold", 43, 10, 10),  # its baseline run did not finish
    ]
    versus = imbalance.summarize(runs)["minority_positive"]["threshold"]["versus_none"]
    assert versus["paired_seeds"] == [42] and versus["minority_recall"]["mean"] == pytest.approx(15.0)
    assert versus["minority_recall"]["lower_95"] is None and versus["target_shown"] is False


def test_calibration_reuses_only_a_finished_run_of_the_same_settings(tmp_path: Path) -> None:
    calibration = load_benchmark("calibration")
    args = calibration.parse_args(["--datasets", "imdb"])
    overrides = calibration.run_overrides("imdb", tmp_path / "data", 42, args, tmp_path / "runs")

    def write_run(name: str, status: str, **changes: Any) -> Path:
        config: dict[str, dict[str, Any]] = {}
        for key, value in (overrides | changes).items():
            section, _, field = key.partition(".")
            config.setdefault(section, {})[field] = value
        run_dir = tmp_path / "runs" / name
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
        (run_dir / "status.json").write_text(json.dumps({"status": status}))
        return run_dir

    assert calibration.finished_run(tmp_path / "runs", overrides) is None
    write_run("a_crashed", "failed")
    write_run("b_other_seed", "completed", **{"train.seed": 43})
    assert calibration.finished_run(tmp_path / "runs", overrides) is None
    finished = write_run("c_same", "completed")
    assert calibration.finished_run(tmp_path / "runs", overrides) == finished


def test_the_post_hoc_temperature_is_found_from_scaled_probabilities() -> None:
    calibration = load_benchmark("calibration")
    rng = np.random.default_rng(0)
    logits = np.stack([np.zeros(20_000), rng.normal(0, 4, 20_000)], axis=1)
    labels = (rng.random(20_000) < 1 / (1 + np.exp(-logits[:, 1] / 2))).astype(int)  # calibrated at T = 2
    scaled = np.exp(logits / 1.5) / np.exp(logits / 1.5).sum(axis=1, keepdims=True)  # what a T = 1.5 run saved
    best = calibration.best_test_temperature(scaled, labels, fitted=1.5)
    assert abs(best["temperature"] - 2.0) < 0.2 and best["ece"] < 1.0
