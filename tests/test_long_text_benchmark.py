"""benchmarks/long_text.py without training: its data preparation, the settings it trains with, and the decision
rule it applies to the measured runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import load_benchmark
from distiltune.data.long_text import LongTextOptions


@pytest.fixture(scope="module")
def bench() -> Any:
    """benchmarks/long_text.py imported as a module (benchmarks are scripts, not a package)."""
    return load_benchmark("long_text")


@pytest.fixture
def imdb_folder(tmp_path: Path) -> Path:
    """A stand-in for the IMDb folder: train.jsonl and test.jsonl with the real files' fields."""
    for name, count in (("train.jsonl", 60), ("test.jsonl", 40)):
        rows = [
            {"id": f"{name}_{i}", "text": f"review {name} {i} " + "word " * i, "label": i % 2, "rating": 1}
            for i in range(count)
        ]
        (tmp_path / name).write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return tmp_path


def test_splits_are_disjoint_seeded_and_the_test_set_is_fixed(bench: Any, imdb_folder: Path) -> None:
    train, test = bench.read_reviews(imdb_folder)
    assert list(train.columns) == ["text", "label"] and len(train) == 60 and len(test) == 40
    first = bench.draw_splits(train, test, 20, 5, 10, seed=1)
    again = bench.draw_splits(train, test, 20, 5, 10, seed=1)
    other = bench.draw_splits(train, test, 20, 5, 10, seed=2)
    train_rows, validation_rows, test_rows = first
    assert (len(train_rows), len(validation_rows), len(test_rows)) == (20, 5, 10)
    assert not set(train_rows["text"]) & set(validation_rows["text"])
    assert all(a.equals(b) for a, b in zip(first, again, strict=True))
    assert not train_rows.equals(other[0]), "each seed draws its own training reviews"
    assert test_rows.equals(other[2]), "every seed is scored on the same test reviews"
    with pytest.raises(SystemExit, match="IMDb train has 60"):
        bench.draw_splits(train, test, 58, 5, 10, seed=1)
    with pytest.raises(SystemExit, match="not found"):
        bench.read_reviews(imdb_folder / "missing")

    folder = bench.write_data_folder(train_rows, validation_rows, imdb_folder / "work")
    written = pd.read_json(folder / "train.jsonl", lines=True)
    assert written.equals(train_rows) and sorted(p.name for p in folder.iterdir()) == [
        "train.jsonl",
        "validation.jsonl",
    ]


@pytest.mark.parametrize("mode", ["head", "tail", "head_tail", "chunks"])
def test_each_mode_trains_with_the_long_text_keys_it_reads(bench: Any, mode: str, tmp_path: Path) -> None:
    args = bench.parse_args(["--head-tokens", "32", "--stride", "16", "--max-windows", "4"])
    overrides = bench.training_overrides(args, mode, 128, 7, tmp_path / "data", tmp_path)
    assert overrides["data.long_text"] == mode and overrides["data.max_length"] == 128
    assert overrides["model.name"] == "minilm" and overrides["train.seed"] == 7
    options = bench.long_text_options(overrides)
    options.validate(128)  # a key the mode does not read would be a ConfigError here
    expected = {
        "head": LongTextOptions("head"),
        "tail": LongTextOptions("tail"),
        "head_tail": LongTextOptions("head_tail", head_tokens=32),
        "chunks": LongTextOptions("chunks", stride=16, max_windows=4),
    }[mode]
    assert options == expected
    assert [name for name, _ in bench.variants(mode)] == (
        ["chunks-mean", "chunks-max"] if mode == "chunks" else [mode]
    )
    for _, aggregation in bench.variants(mode):  # every scored variant is a valid setting of the trained mode
        assert bench.long_text_options(overrides, aggregation).validate(128).aggregation == (aggregation or "mean")


def test_modes_must_include_the_head_baseline(bench: Any) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(["--modes", "tail,chunks"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--modes", "head,middle"])


def rows_for(
    variant: str, max_length: int, accuracies: list[float], train_speed: float = 100.0, infer_speed: float = 300.0
) -> list[dict[str, Any]]:
    return [
        {
            "seed": seed,
            "max_length": max_length,
            "mode": variant.partition("-")[0],
            "variant": variant,
            "accuracy": accuracy,
            "train_documents_per_second": train_speed,
            "inference_documents_per_second": infer_speed,
            "test_windows_per_review": 1.0,
            "test_unread_share": 0.5,
        }
        for seed, accuracy in zip((42, 43, 44), accuracies, strict=True)
    ]


HEAD = [0.80, 0.82, 0.81]


def test_a_mode_wins_with_a_clear_paired_gain_at_acceptable_cost(bench: Any) -> None:
    runs = []
    for length in (128, 256):
        runs += rows_for("head", length, HEAD)
        runs += rows_for("head_tail", length, [0.83, 0.845, 0.835])  # +3, +2.5, +2.5 points
        runs += rows_for("tail", length, [0.805, 0.826, 0.8155])  # +0.5, +0.6, +0.55: sure, but under 1 point
    decision = bench.decide(runs)
    assert decision["default_long_text"] == "head_tail" and decision["window_aggregation"] is None
    verdict = decision["verdicts"]["128"]
    assert verdict["head_tail"]["wins"] and not verdict["tail"]["wins"]
    assert verdict["tail"]["lower_bound_above_zero"] and not verdict["tail"]["gain_at_least_min"]
    summary = bench.summarize(runs)["128"]["head_tail"]
    assert summary["gain_points"]["mean"] == pytest.approx(2.667, abs=1e-3)
    assert summary["accuracy_mean"] == pytest.approx(0.8367, abs=1e-4)
    assert summary["train_speed_ratio"] == 1.0


def test_a_large_but_noisy_gain_does_not_win(bench: Any) -> None:
    runs = []
    for length in (128, 256):
        runs += rows_for("head", length, HEAD) + rows_for("tail", length, [0.86, 0.80, 0.84])  # +6, -2, +3
    decision = bench.decide(runs)
    checks = decision["verdicts"]["128"]["tail"]
    assert checks["gain_at_least_min"] and not checks["lower_bound_above_zero"]
    assert decision["default_long_text"] == "head"


def test_a_gain_at_more_than_twice_the_cost_does_not_win(bench: Any) -> None:
    runs = []
    for length in (128, 256):
        runs += rows_for("head", length, HEAD, train_speed=100.0)
        runs += rows_for("chunks-mean", length, [0.85, 0.87, 0.86], train_speed=45.0)  # 0.45x head's speed
        runs += rows_for("chunks-max", length, [0.85, 0.87, 0.86], train_speed=45.0)
    decision = bench.decide(runs)
    assert not decision["verdicts"]["128"]["chunks-mean"]["cost_acceptable"]
    assert decision["default_long_text"] == "head"


def test_chunks_win_and_max_is_chosen_only_when_it_beats_mean(bench: Any) -> None:
    runs = []
    for length in (128, 256):
        runs += rows_for("head", length, HEAD, train_speed=100.0)
        runs += rows_for("chunks-mean", length, [0.83, 0.85, 0.84], train_speed=60.0)
        runs += rows_for("chunks-max", length, [0.835, 0.853, 0.842], train_speed=60.0)  # +0.3 over mean
    decision = bench.decide(runs)
    assert decision["default_long_text"] == "chunks" and decision["window_aggregation"] == "mean"
    better_max = [
        dict(row, accuracy=row["accuracy"] + 0.03) if row["variant"] == "chunks-max" else row for row in runs
    ]
    decision = bench.decide(better_max)
    assert decision["default_long_text"] == "chunks" and decision["window_aggregation"] == "max"


def test_a_mode_must_win_at_every_max_length_and_fewer_than_three_seeds_never_win(bench: Any) -> None:
    runs = rows_for("head", 128, HEAD) + rows_for("head_tail", 128, [0.83, 0.845, 0.835])
    runs += rows_for("head", 256, HEAD) + rows_for("head_tail", 256, HEAD)  # no gain at 256
    decision = bench.decide(runs)
    assert decision["verdicts"]["128"]["head_tail"]["wins"] and decision["default_long_text"] == "head"
    assert "not measured" in bench.decide(rows_for("head", 128, HEAD))["reason"]
    two_seeds = [row for row in runs if row["seed"] != 44 and row["max_length"] == 128]
    assert not bench.decide(two_seeds)["verdicts"]["128"]["head_tail"]["lower_bound_above_zero"]
