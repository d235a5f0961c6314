"""benchmarks/tune.py's pure parts: the default-vs-best summary and the config both arms start from."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "tune.py"


@pytest.fixture(scope="module")
def benchmark() -> Any:
    spec = importlib.util.spec_from_file_location("tune_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tune_benchmark"] = module
    spec.loader.exec_module(module)
    return module


def arm(accuracy: float) -> dict[str, float]:
    return {"test_accuracy": accuracy, "test_f1_macro": accuracy, "validation_accuracy": accuracy}


def test_summary_pairs_the_seeds_and_gives_a_t_interval(benchmark: Any) -> None:
    rows = [
        {"seed": 1, "default": arm(0.80), "best": arm(0.83)},
        {"seed": 2, "default": arm(0.82), "best": arm(0.83)},
        {"seed": 3, "default": arm(0.81), "best": arm(0.85)},
        {"seed": 4, "default": arm(0.81)},  # an interrupted seed is left out of every figure
    ]
    summary = benchmark.summarize(rows)
    assert summary["seeds"] == 3
    assert summary["default_accuracy_mean"] == pytest.approx(0.81)
    assert summary["best_accuracy_mean"] == pytest.approx(0.8366667)
    assert summary["difference_points"] == pytest.approx([3.0, 1.0, 4.0])
    assert summary["difference_mean_points"] == pytest.approx(8 / 3)
    low, high = summary["difference_ci95_points"]
    # t(0.975, 2) = 4.303; sd of (3, 1, 4) = 1.5275
    assert (low + high) / 2 == pytest.approx(8 / 3) and high - low == pytest.approx(2 * 4.303 * 1.5275 / 3**0.5, 1e-3)


def test_one_seed_has_no_interval(benchmark: Any) -> None:
    summary = benchmark.summarize([{"seed": 1, "default": arm(0.8), "best": arm(0.79)}])
    assert summary["difference_mean_points"] == pytest.approx(-1.0)
    assert summary["default_accuracy_sd"] is None and "difference_ci95_points" not in summary


def test_both_arms_start_from_the_method_defaults_selected_on_accuracy(benchmark: Any) -> None:
    args = benchmark.parse_args(["--method", "lora", "--search-seed", "7", "--set", "train.epochs=2"])
    base = benchmark.base_overrides(args, {"data.dataset": "folder"})
    assert base == {
        "data.dataset": "folder",
        "model.name": "minilm",
        "method.name": "lora",
        "train.metric": "accuracy",
        "train.seed": 7,
        "train.epochs": "2",
    }
    assert args.trials == 12 and args.seeds == "1,2,3" and args.train_size == 2000
