"""What to predict, chosen by the library (``inference.inputs``) for the CLI and Python callers alike: texts, one
pair, or a file; the same one-line errors from both."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from distiltune.cli import main
from distiltune.config import DataConfig
from distiltune.errors import DataError
from distiltune.inference.inputs import PredictionInputs, prediction_inputs


def classifier(is_pair: bool = False, **data: Any) -> Any:
    """What prediction_inputs reads of a Classifier: the run's data config and whether it was trained on pairs."""
    return SimpleNamespace(config=SimpleNamespace(data=DataConfig(**data)), is_pair=is_pair)


def test_texts_a_pair_or_a_file(tmp_path: Path) -> None:
    assert prediction_inputs(classifier(), ["good", "bad"]) == PredictionInputs(["good", "bad"], None)
    assert prediction_inputs(classifier(True), pair=("a man runs", "a person moves")) == PredictionInputs(
        ["a man runs"], ["a person moves"]
    )
    file = tmp_path / "new.csv"
    pd.DataFrame({"review": ["fine film", "dull"], "stars": [5, 1]}).to_csv(file, index=False)
    # The run's text column is used for a file...
    assert prediction_inputs(classifier(text_column="review"), input_file=file) == PredictionInputs(
        ["fine film", "dull"], None
    )
    # ...unless the caller names another; a file comes first, then a pair, then texts.
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"p": ["x1", "x2"], "h": ["y1", "y2"]}).to_csv(pairs, index=False)
    chosen = prediction_inputs(classifier(True), ["ignored"], ("a", "b"), pairs, text_column="p", text_pair_column="h")
    assert chosen == PredictionInputs(["x1", "x2"], ["y1", "y2"])


@pytest.mark.parametrize(
    ("model", "choices", "message"),
    [
        (classifier(), {}, "Nothing to predict. Pass texts, --pair A B, or --input FILE."),
        (classifier(), {"texts": []}, "Nothing to predict."),
        (classifier(True), {"texts": ["one"]}, "This model was trained on sentence pairs. Use --pair A B or an"),
        (classifier(), {"input_file": "missing.csv"}, "Input file not found: missing.csv."),
    ],
)
def test_what_cannot_be_predicted_is_one_line(model: Any, choices: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError) as raised:
        prediction_inputs(model, **choices)
    assert raised.value.one_line().startswith(message)


def test_the_cli_asks_the_library(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import distiltune

    seen: list[Any] = []
    model = classifier(True)
    monkeypatch.setattr(distiltune, "load", lambda run_dir, backend="torch": model, raising=False)
    from distiltune.inference import inputs

    real = inputs.prediction_inputs
    monkeypatch.setattr(inputs, "prediction_inputs", lambda *args, **kw: seen.append(args) or real(*args, **kw))
    monkeypatch.setattr(sys, "argv", ["distiltune", "predict", "some-run", "just one text"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: This model was trained on sentence pairs. Use --pair A B or an --input file with pairs."
    )
    assert seen and seen[0][0] is model and seen[0][1] == ["just one text"]
