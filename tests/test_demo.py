"""``distiltune demo`` and ``benchmarks/demo.py`` train through one function with one set of settings, and the
benchmark records what it promises (wall time, training seconds, accuracy, precision, the machine)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import distiltune.training.demo as demo
from conftest import load_benchmark
from distiltune.cli import app


@pytest.fixture
def recorded_train(monkeypatch: pytest.MonkeyPatch, tiny_model: str) -> list[dict[str, Any]]:
    """Every ``train`` call of the demo records its overrides, then trains the tiny model on a sliver of the
    bundled reviews (the real pipeline, in seconds)."""
    calls: list[dict[str, Any]] = []
    real_train = demo.train

    def train(config: Any, overrides: dict[str, Any]) -> Any:
        calls.append(dict(overrides))
        tiny = {
            "model.name": tiny_model,
            "data.max_train_samples": 16,
            "data.max_eval_samples": 8,
            "data.max_length": 16,
            "train.epochs": 1,
        }
        return real_train(config, {**overrides, **tiny})

    monkeypatch.setattr(demo, "train", train)
    return calls


def test_cli_demo_trains_with_the_demo_settings(tmp_path: Path, recorded_train: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["demo", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert recorded_train == [demo.demo_overrides(demo.DEMO_EPOCHS, str(tmp_path))]
    assert "Predictions on new sentences" in result.output
    assert all(sentence[:20] in result.output for sentence in demo.DEMO_SENTENCES)


def test_demo_benchmark_times_the_demo_and_records_the_machine(
    tmp_path: Path, recorded_train: list[dict[str, Any]]
) -> None:
    benchmark = load_benchmark("demo")
    work, output = tmp_path / "work", tmp_path / "out"
    path = benchmark.main(["--precision", "fp32", "--work-dir", str(work), "--output-dir", str(output)])

    # The demo's own settings, plus only what the flags asked for.
    assert recorded_train == [{**demo.demo_overrides(demo.DEMO_EPOCHS, str(work)), "train.precision": "fp32"}]
    assert path.parent == output and path.name.startswith("demo_") and path.name.endswith("_fp32.json")
    results = json.loads(path.read_text(encoding="utf-8"))
    (run,) = results["runs"]
    assert run["precision"] == "fp32"
    assert run["wall_seconds"] >= run["train_seconds"] > 0
    assert 0.0 <= run["test_accuracy"] <= 1.0 and run["test_rows"] == 8
    assert len(run["predictions"]) == len(demo.DEMO_SENTENCES)
    hardware = results["hardware"]
    assert {"cpu", "cpu_flags", "cpu_native_bf16", "cpu_amx", "cpu_avx512", "torch_threads"} <= set(hardware)
    assert results["summary"]["repeats"] == 1 and results["import_seconds"] >= 0


def test_demo_benchmark_smoke_flag_shrinks_the_data() -> None:
    benchmark = load_benchmark("demo")
    smoke = benchmark.extra_overrides(benchmark.parse_args(["--smoke"]))
    assert smoke["data.max_train_samples"] == 32 and smoke["train.epochs"] == 1
    assert benchmark.extra_overrides(benchmark.parse_args([])) == {}  # the real benchmark adds nothing
