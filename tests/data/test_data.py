"""Data loading: every format and column mapping gives the same clean splits; bad data fails clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from distiltune.config import DataConfig
from distiltune.data import load_data, load_eval_file
from distiltune.errors import DataError


def texts_and_labels(frame: pd.DataFrame, names: list[str]) -> list[tuple[str, str]]:
    return sorted(zip(frame["text"], (names[i] for i in frame["label"]), strict=True))


def all_rows(data) -> list[tuple[str, str]]:
    return texts_and_labels(pd.concat([data.train, data.validation]), data.labels.names)


def test_csv_with_column_mapping_and_string_labels(fixtures_dir: Path) -> None:
    data = load_data(
        DataConfig(
            dataset=str(fixtures_dir / "tiny.csv"),
            text_column="review",
            label_column="sentiment",
            validation_fraction=0.25,
        ),
        seed=1,
    )
    assert data.labels.names == ["neg", "pos"]
    assert len(data.train) == 18 and len(data.validation) == 6 and data.test is None
    # stratified: both classes in validation, equally
    assert sorted(data.validation["label"].tolist()) == [0, 0, 0, 1, 1, 1]
    assert data.config.text_column == "review" and data.config.label_column == "sentiment"


def test_every_format_yields_the_same_rows(fixtures_dir: Path) -> None:
    csv = load_data(
        DataConfig(
            dataset=str(fixtures_dir / "tiny.csv"),
            text_column="review",
            label_column="sentiment",
            validation_fraction=0.25,
        ),
        seed=1,
    )
    jsonl = load_data(
        DataConfig(dataset=str(fixtures_dir / "tiny.jsonl"), label_names=["neg", "pos"], validation_fraction=0.25),
        seed=1,
    )
    parquet = load_data(
        DataConfig(
            dataset=str(fixtures_dir / "tiny.parquet"),
            text_column="content",
            label_column="target",
            validation_fraction=0.25,
        ),
        seed=1,
    )
    assert all_rows(csv) == all_rows(jsonl) == all_rows(parquet)
    assert jsonl.config.text_column == "text" and jsonl.config.label_column == "label"  # auto-detected


def test_tsv_written_by_pandas_and_glue_style_agree(tmp_path: Path, fixtures_dir: Path) -> None:
    frame = pd.read_csv(fixtures_dir / "tiny.csv")
    frame.loc[0, "review"] = 'he said "great" movie'
    frame.loc[1, "review"] = '" odd quote at start'
    glue = tmp_path / "glue.tsv"
    glue.write_text("review\tsentiment\n" + "".join(f"{r}\t{s}\n" for r, s in frame.itertuples(index=False)))
    quoted = tmp_path / "quoted.tsv"
    frame.to_csv(quoted, sep="\t", index=False)
    for path in (glue, quoted):
        data = load_data(DataConfig(dataset=str(path), text_column="review", label_column="sentiment"), seed=1)
        texts = set(pd.concat([data.train, data.validation])["text"])
        assert 'he said "great" movie' in texts and '" odd quote at start' in texts, path
        assert len(texts) == 24


def test_integer_labels_without_names_keep_their_values_as_names(tmp_path: Path) -> None:
    path = tmp_path / "topics.jsonl"
    rows = [{"text": f"row {i}", "label": 1 + i % 4} for i in range(40)]  # AG News style 1..4
    path.write_text("\n".join(json.dumps(r) for r in rows))
    data = load_data(DataConfig(dataset=str(path)), seed=0)
    assert data.labels.names == ["1", "2", "3", "4"]
    first = data.train.iloc[0]
    assert data.labels.names[first["label"]] == str(next(r["label"] for r in rows if r["text"] == first["text"]))


def test_folder_with_train_validation_test(fixtures_dir: Path) -> None:
    data = load_data(DataConfig(dataset=str(fixtures_dir / "folder")), seed=0)
    assert (len(data.train), len(data.validation), len(data.test)) == (24, 8, 8)
    assert data.config.validation_split == "validation" and data.config.test_split == "test"


def test_sentence_pairs_detected(fixtures_dir: Path) -> None:
    data = load_data(DataConfig(dataset=str(fixtures_dir / "pairs.tsv")), seed=0)
    assert data.is_pair and data.config.text_pair_column == "hypothesis"
    assert data.labels.names == ["contradiction", "entailment"]


def test_explicit_pair_column(tmp_path: Path) -> None:
    path = tmp_path / "nli.csv"
    pd.DataFrame({"a": ["x y", "y z"] * 5, "b": ["z", "x"] * 5, "gold": ["yes", "no"] * 5}).to_csv(path, index=False)
    data = load_data(DataConfig(dataset=str(path), text_column="a", text_pair_column="b", label_column="gold"), 0)
    assert data.is_pair and set(data.train.columns) == {"text", "text_pair", "label"}


def test_bundled_demo_preset_loads_offline() -> None:
    data = load_data(DataConfig(dataset="imdb-demo"), seed=42)
    assert data.labels.names == ["neg", "pos"]
    assert len(data.train) + len(data.validation) == 1500 and len(data.test) == 500
    # The max length is not the data's to resolve: config.resolve_settings takes the preset's, once.
    from distiltune.config import load_config, resolve_settings

    settings = resolve_settings(load_config(None, {"data.dataset": "imdb-demo"}), model_limit=512)
    assert settings.max_length == 256 and settings.metric == "accuracy"
    assert resolve_settings(load_config(None, {"data.dataset": "imdb-demo"}), model_limit=128).max_length == 128


def test_rows_with_empty_text_or_label_are_dropped_with_a_count_when_asked(tmp_path: Path, caplog) -> None:
    path = tmp_path / "holes.csv"
    path.write_text("text,label\ngood,pos\n,neg\nbad,\nfine,pos\nawful,neg\nnice,pos\nugly,neg\n")
    with caplog.at_level("WARNING", logger="distiltune"):
        data = load_data(DataConfig(dataset=str(path), validation_fraction=0.4, drop_missing_labels=True), seed=0)
    assert len(data.train) + len(data.validation) == 5
    assert "dropped 2 of 7 rows" in caplog.text


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (None, "missing.csv", "not found"),
        ("text,label\n", "header.csv", "no data rows"),
        ("", "empty.csv", "empty"),
        ("text\tlabel\n", "data.xlsx", "unsupported file type"),
        ("text,label\nonly,pos\nsame,pos\n", "single.csv", "single class"),
        ("text,label\n,pos\n ,neg\n", "blank.csv", "every row has an empty text"),
        ("review,stars\na,1\nb,2\n", "nocol.csv", "Columns are: review, stars"),
        ('{"text": "a", "label": 0}\n{"text": "b", "label": 1\n', "broken.jsonl", "line 2 is not valid JSON"),
    ],
)
def test_bad_files_raise_data_errors_that_name_the_problem(tmp_path: Path, content, name, message) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        load_data(DataConfig(dataset=str(path)), seed=0)
    assert name in str(info.value)


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ngood,pos\ncaf\xe9 bad,neg\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"line 3 is not valid UTF-8"):
        load_data(DataConfig(dataset=str(path)), seed=0)


def test_missing_explicit_column_lists_the_columns(fixtures_dir: Path) -> None:
    with pytest.raises(DataError, match=r"no label column 'stars'\. Columns are: review, sentiment"):
        load_data(DataConfig(dataset=str(fixtures_dir / "tiny.csv"), text_column="review", label_column="stars"), 0)


def test_eval_labels_unknown_in_train_are_named(tmp_path: Path, fixtures_dir: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.csv").write_text((fixtures_dir / "tiny.csv").read_text())
    (folder / "test.csv").write_text("review,sentiment\ngood,pos\nmeh,neutral\nokay,mixed\n")
    with pytest.raises(DataError, match=r"labels not seen in training: mixed, neutral"):
        load_data(DataConfig(dataset=str(folder), text_column="review", label_column="sentiment"), 0)


def test_load_eval_file_maps_columns_like_training(fixtures_dir: Path) -> None:
    data = load_data(
        DataConfig(dataset=str(fixtures_dir / "tiny.csv"), text_column="review", label_column="sentiment"), 0
    )
    frame = load_eval_file(str(fixtures_dir / "tiny.csv"), data.config, data.labels)
    assert len(frame) == 24 and set(frame["label"]) == {0, 1}


def test_hub_dataset_uses_classlabel_names_and_skips_hidden_glue_test_labels(monkeypatch) -> None:
    """The hub path: ``name:config`` goes to ``datasets.load_dataset``; hidden (-1) test labels are not evaluated."""
    import datasets

    features = datasets.Features(
        {
            "sentence1": datasets.Value("string"),
            "sentence2": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["entailment", "not_entailment"]),
        }
    )

    def split(n: int, hidden: bool = False) -> datasets.Dataset:
        return datasets.Dataset.from_dict(
            {
                "sentence1": [f"premise {i}" for i in range(n)],
                "sentence2": [f"hypothesis {i}" for i in range(n)],
                "label": [-1 if hidden else i % 2 for i in range(n)],
            },
            features=features,
        )

    calls = []

    def fake_load_dataset(name, subset=None, revision=None):
        calls.append((name, subset))
        return datasets.DatasetDict({"train": split(20), "validation": split(6), "test": split(6, hidden=True)})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_data(DataConfig(dataset="rte"), seed=0)
    assert calls == [("nyu-mll/glue", "rte")]
    assert data.is_pair and data.labels.names == ["entailment", "not_entailment"]
    assert len(data.validation) == 6 and data.test is None and data.config.validation_split == "validation"
