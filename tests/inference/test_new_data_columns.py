"""``evaluate`` and ``predict --input`` on new data whose columns are not named as in training: the run's own
columns are tried first, then detection as ``train`` does it, and explicit column flags win."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import distiltune
from conftest import FIXTURES
from distiltune.cli import app
from distiltune.errors import DataError
from distiltune.runs import read_jsonl


@pytest.fixture
def review_run(fast_overrides: dict) -> distiltune.Run:
    """Trained on tiny.csv, whose columns are review / sentiment."""
    return distiltune.train(None, fast_overrides)


def renamed(tmp_path: Path, columns: dict[str, str], name: str) -> Path:
    path = tmp_path / name
    pd.read_csv(FIXTURES / "tiny.csv").rename(columns=columns).to_csv(path, index=False)
    return path


def test_evaluate_detects_other_column_names_as_train_does(review_run: distiltune.Run, tmp_path: Path) -> None:
    other = renamed(tmp_path, {"review": "text", "sentiment": "label"}, "other.csv")
    on_other = distiltune.evaluate(review_run.dir, str(other))
    on_original = distiltune.evaluate(review_run.dir, str(FIXTURES / "tiny.csv"), output=tmp_path / "original.json")
    assert on_other["samples"] == 24
    assert on_other["accuracy"] == on_original["accuracy"] and on_other["f1_macro"] == on_original["f1_macro"]


def test_undetectable_columns_need_the_flags_and_the_flags_work(review_run: distiltune.Run, tmp_path: Path) -> None:
    other = renamed(tmp_path, {"review": "body", "sentiment": "stars"}, "other.csv")
    with pytest.raises(DataError, match="--text-column"):
        distiltune.evaluate(review_run.dir, str(other))
    metrics = distiltune.evaluate(review_run.dir, str(other), text_column="body", label_column="stars")
    assert metrics["samples"] == 24

    result = CliRunner().invoke(
        app,
        ["evaluate", str(review_run.dir), "--dataset", str(other), "--text-column", "body", "--label-column", "stars"],
    )
    assert result.exit_code == 0, result.output
    predictions = tmp_path / "predictions.jsonl"
    result = CliRunner().invoke(
        app,
        ["predict", str(review_run.dir), "--input", str(other), "--text-column", "body", "--output", str(predictions)],
    )
    assert result.exit_code == 0, result.output
    rows = read_jsonl(predictions)
    assert [row["text"] for row in rows] == pd.read_csv(other)["body"].tolist()


def test_pair_columns_through_predict_input(fast_overrides: dict, tmp_path: Path) -> None:
    run = distiltune.train(
        None,
        {
            **fast_overrides,
            "data.dataset": str(FIXTURES / "pairs.tsv"),
            "data.text_column": None,
            "data.label_column": None,
            "train.max_steps": 2,
        },
    )
    frame = pd.read_csv(FIXTURES / "pairs.tsv", sep="\t").rename(columns={"premise": "a", "hypothesis": "b"})
    source = tmp_path / "pairs.csv"
    frame.to_csv(source, index=False)
    output = tmp_path / "out.jsonl"
    args = ["predict", str(run.dir), "--input", str(source), "--output", str(output), "--top-k", "3"]
    result = CliRunner().invoke(app, [*args, "--text-column", "a", "--text-pair-column", "b"])
    assert result.exit_code == 0, result.output
    rows = read_jsonl(output)
    assert [(row["text"], row["text_pair"]) for row in rows] == list(zip(frame["a"], frame["b"], strict=True))
    expected = run.load().predict(frame["a"].tolist(), frame["b"].tolist(), top_k=3)
    assert [row["scores"] for row in rows] == [item["scores"] for item in expected]
    # Without the pair column a pair model says what is missing and which flag names it.
    result = CliRunner().invoke(app, [*args, "--text-column", "a"])
    assert result.exit_code != 0 and "--text-pair-column" in str(result.exception or result.output)
