"""Bad input through the real CLI: one ``error:`` line naming the problem, exit code 2, no traceback.

The corpus lives in ``tests/fixtures/malformed/`` (one problem per file; see its README). The CLI runs
in-process (``distiltune.cli.main``) and every failing case stops before a model loads, except the two that
are about the model itself. Files that must *parse* (embedded newlines, GLUE quotes, a 200k-character text)
are checked for their exact contents.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

import distiltune
from distiltune.cli import main
from distiltune.config import DataConfig
from distiltune.data import load_data
from distiltune.errors import DataError

MALFORMED = Path(__file__).parent.parent / "fixtures" / "malformed"


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["distiltune", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code, capsys.readouterr().err


def assert_one_error_line(code: int, stderr: str, *fragments: str) -> str:
    assert code == 2, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def train_args(tiny_model: str, tmp_path: Path):
    def build(dataset: str | Path, *extra: str) -> list[str]:
        return [
            "train",
            "--model",
            tiny_model,
            "--dataset",
            str(dataset),
            "--max-length",
            "16",
            "--output-dir",
            str(tmp_path / "runs"),
            "--set",
            "train.precision=fp32",
            *extra,
        ]

    return build


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("empty.csv", ["empty.csv: the file is empty"]),
        ("header_only.csv", ["header_only.csv: no data rows"]),
        ("no_label_column.csv", ["cannot find a label column", "Columns are: review, stars", "--label-column"]),
        ("no_text_column.csv", ["cannot find a text column", "Columns are: body, label", "--text-column"]),
        ("empty_label.csv", ["2 row(s) have an empty or NaN label in column 'label'", "data rows 3, 4"]),
        ("mixed_labels.csv", ["labels mix numbers and strings"]),
        ("unknown_eval_labels", ["[validation]: labels not seen in training: mixed, neutral", "Training labels are"]),
        ("latin1_byte.csv", ["latin1_byte.csv: line 4 is not valid UTF-8", "byte 0xe9"]),
        ("broken_line.jsonl", ["broken_line.jsonl: line 3 is not valid JSON"]),
        ("wrong_type.parquet", ["column 'text' must hold text", "row 1 holds int"]),
    ],
)
def test_malformed_file_gives_one_line_and_exit_code_2(name, fragments, train_args, monkeypatch, capsys) -> None:
    code, stderr = run_cli(train_args(MALFORMED / name), monkeypatch, capsys)
    assert_one_error_line(code, stderr, *fragments)


def test_explicit_missing_column_lists_the_columns(train_args, monkeypatch, capsys, fixtures_dir: Path) -> None:
    code, stderr = run_cli(
        train_args(fixtures_dir / "tiny.csv", "--text-column", "body", "--label-column", "sentiment"),
        monkeypatch,
        capsys,
    )
    assert_one_error_line(code, stderr, "no text column 'body'", "Columns are: review, sentiment")


def test_debug_shows_the_traceback(train_args, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["distiltune", *train_args(MALFORMED / "empty.csv"), "--debug"])
    with pytest.raises(DataError, match="the file is empty"):
        main()  # re-raised, so Python prints the traceback


def test_empty_labels_can_be_skipped_on_request() -> None:
    data = load_data(DataConfig(dataset=str(MALFORMED / "empty_label.csv"), drop_missing_labels=True), seed=0)
    assert len(data.train) + len(data.validation) == 4


def test_csv_with_embedded_newlines_and_quotes_parses_exactly() -> None:
    data = load_data(DataConfig(dataset=str(MALFORMED / "embedded_newlines.csv"), validation_fraction=0.34), 0)
    texts = set(pd.concat([data.train, data.validation])["text"])
    assert texts == {
        "A film in\ntwo lines, with a comma",
        'She said "wow" and left',
        "plain row",
        '"Quoted" from the start',
        "three\nlines\nhere",
        "last row",
    }


def test_glue_style_tsv_keeps_quote_characters_inside_fields() -> None:
    data = load_data(DataConfig(dataset=str(MALFORMED / "glue_quotes.tsv"), validation_fraction=0.34), 0)
    texts = set(pd.concat([data.train, data.validation])["text"])
    assert texts == {
        'he said "great" movie',
        '" odd quote at start',
        'an "unclosed quote',
        "plain one",
        'it\'s "fine"',
        '"wrapped" then more',
    }


def test_a_200k_character_text_is_truncated_not_a_crash(tiny_model: str, tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    long_text = ("great " * 34_000)[:200_000]
    rows = [(long_text, "pos")] + [("great fun", "pos"), ("awful plot", "neg"), ("dull film", "neg")] * 3
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    run = distiltune.train(
        None,
        {
            "model.name": tiny_model,
            "data.dataset": str(path),
            "data.max_length": 16,
            "data.validation_fraction": 0.3,
            "train.max_steps": 1,
            "train.precision": "fp32",
            "run.output_dir": str(tmp_path / "runs"),
        },
    )
    assert run.metrics["train_rows"] == 7
    assert len(run.load().predict([long_text])) == 1


# --- config and model mistakes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--set", "train.lrr=1e-3"], ["unknown key 'lrr'", "Did you mean 'lr'?"]),
        (["--set", "trian.epochs=1"], ["unknown key 'trian'", "Did you mean 'train'?"]),
        (["--lr", "0"], ["train.lr must be > 0"]),
        (["--lr", "-1e-5"], ["train.lr must be > 0"]),
        (["--batch-size", "0"], ["train.batch_size must be >= 1"]),
        (["--method", "fulll"], ["Unknown method 'fulll'", "Did you mean 'full'?"]),
    ],
)
def test_config_mistakes_give_one_line(extra, fragments, train_args, fixtures_dir, monkeypatch, capsys) -> None:
    code, stderr = run_cli(train_args(fixtures_dir / "tiny.csv", *extra), monkeypatch, capsys)
    assert_one_error_line(code, stderr, *fragments)


def test_unknown_preset_suggests_the_close_one(train_args, monkeypatch, capsys) -> None:
    code, stderr = run_cli(train_args("imbd"), monkeypatch, capsys)
    assert_one_error_line(code, stderr, "Unknown dataset 'imbd'", "Did you mean the preset 'imdb'?")


def test_max_length_above_the_model_limit(train_args, fixtures_dir, monkeypatch, capsys) -> None:
    args = train_args(fixtures_dir / "tiny.csv", "--text-column", "review", "--label-column", "sentiment")
    args[args.index("--max-length") + 1] = "4096"
    code, stderr = run_cli(args, monkeypatch, capsys)
    assert_one_error_line(code, stderr, "data.max_length 4096 exceeds the model's limit of 64 tokens")


def test_missing_model_says_so_and_how_to_point_at_a_local_copy(train_args, fixtures_dir, monkeypatch, capsys):
    args = train_args(fixtures_dir / "tiny.csv", "--text-column", "review", "--label-column", "sentiment")
    args[args.index("--model") + 1] = "no-such-org/no-such-model"
    code, stderr = run_cli(args, monkeypatch, capsys)
    assert_one_error_line(
        code,
        stderr,
        "Model 'no-such-org/no-such-model' is not a local directory and could not be loaded from the Hugging Face hub",
        "local directory",
        "HF_HOME",
    )


# --- long texts, class weights, decision thresholds (issue 18): refused before a model loads ---------------------


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (
            ["--long-text", "chunks", "--set", "data.stride=16"],
            ["data.stride (16) must be smaller than data.max_length (16)"],
        ),
        (
            ["--long-text", "chunks", "--set", "data.stride=14"],
            ["data.stride (14) must be smaller than the 14 tokens a window holds"],
        ),
        (["--set", "data.stride=4"], ["data.stride is only read with data.long_text=chunks"]),
        (["--class-weights", "{postive: 2}"], ["train.class_weights: unknown label 'postive'", "neg, pos"]),
        (["--class-weights", "inverse"], ["train.class_weights must be none, balanced or a mapping"]),
        (["--loss", "hinge"], ["train.loss must be one of cross_entropy, focal"]),
        (["--calibrate", "platt"], ["train.calibrate must be one of none, temperature"]),
    ],
)
def test_real_world_text_settings_give_one_line_before_training(
    extra, fragments, train_args, fixtures_dir, monkeypatch, capsys, tmp_path
) -> None:
    args = train_args(fixtures_dir / "tiny.csv", "--text-column", "review", "--label-column", "sentiment", *extra)
    code, stderr = run_cli(args, monkeypatch, capsys)
    assert_one_error_line(code, stderr, *fragments)
    assert not list(tmp_path.glob("runs/*/env.json")), "a model was built before the mistake was reported"


def test_a_decision_threshold_on_four_labels_is_refused_before_training(
    train_args, monkeypatch, capsys, tmp_path
) -> None:
    path = tmp_path / "four.csv"
    names = ["world", "sports", "business", "science"]
    pd.DataFrame({"text": [f"{name} news {i}" for i in range(3) for name in names], "label": names * 3}).to_csv(
        path, index=False
    )
    code, stderr = run_cli(train_args(path, "--tune-threshold"), monkeypatch, capsys)
    assert_one_error_line(code, stderr, "train.tune_threshold (--tune-threshold) needs a task with two labels")
    assert not list(tmp_path.glob("runs/*/env.json")), "a model was built before the mistake was reported"
