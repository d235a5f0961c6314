"""Multi-label data: every accepted label form loads to the same label sets, a row may have no label, and each broken
form is a one-line error that names the file, the row and the value."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import build_tokenizer
from distiltune.data import load_data, load_eval_file, split_validation
from distiltune.data.collate import PaddingCollator
from distiltune.data.config import DataConfig
from distiltune.data.multilabel import describe_label_sets, multi_hot
from distiltune.data.tokenize import tokenize_frame
from distiltune.errors import ConfigError, DataError

NAMES = ["anger", "joy", "love"]
#: Eight texts and their label sets (names); the second row has none, the third two.
ROWS = [
    ("you made my day", ["joy"]),
    ("the bus was late", []),
    ("i adore you, what a gift", ["joy", "love"]),
    ("this is outrageous", ["anger"]),
    ("furious and sad", ["anger"]),
    ("so much love here", ["love"]),
    ("happy happy happy", ["joy"]),
    ("angry but i still love it", ["anger", "love"]),
]
EXPECTED = [[NAMES.index(name) for name in sorted(labels, key=NAMES.index)] for _, labels in ROWS]


def write_splits(folder: Path, write: callable) -> Path:
    """The rows as train and (the same rows) validation files in one format."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation"):
        write(folder, split)
    return folder


def jsonl_with_lists(folder: Path, split: str) -> None:
    lines = [json.dumps({"text": text, "labels": labels}) for text, labels in ROWS]
    (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def parquet_with_lists(folder: Path, split: str) -> None:
    pd.DataFrame({"text": [t for t, _ in ROWS], "labels": [labels for _, labels in ROWS]}).to_parquet(
        folder / f"{split}.parquet"
    )


def csv_delimited(folder: Path, split: str) -> None:
    pd.DataFrame({"text": [t for t, _ in ROWS], "labels": ["|".join(labels) for _, labels in ROWS]}).to_csv(
        folder / f"{split}.csv", index=False
    )


def csv_json_lists(folder: Path, split: str) -> None:
    pd.DataFrame({"text": [t for t, _ in ROWS], "labels": [json.dumps(labels) for _, labels in ROWS]}).to_csv(
        folder / f"{split}.csv", index=False
    )


def csv_label_columns(folder: Path, split: str) -> None:
    frame = pd.DataFrame({"text": [t for t, _ in ROWS]})
    for name in NAMES:
        frame[name] = [int(name in labels) for _, labels in ROWS]
    frame.to_csv(folder / f"{split}.csv", index=False)


def tsv_ids_without_header(folder: Path, split: str) -> None:
    # GoEmotions' layout: no header; text, comma-separated ids, an id column; a text that is CSV-quoted.
    lines = []
    for index, (text, labels) in enumerate(ROWS):
        shown = f'"{text}, ""quoted"""' if index == 0 else text
        lines.append(f"{shown}\t{','.join(str(NAMES.index(n)) for n in labels)}\tid{index}")
    (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "names.txt").write_text("\n".join(NAMES), encoding="utf-8")


FORMS = {
    "jsonl lists": (jsonl_with_lists, {}),
    "parquet lists": (parquet_with_lists, {}),
    "delimited strings": (csv_delimited, {"multi_label": True, "label_separator": "|"}),
    "json lists in csv": (csv_json_lists, {"multi_label": True}),
    "0/1 label columns": (csv_label_columns, {"label_columns": NAMES}),
    "ids + names file, no header": (
        tsv_ids_without_header,
        {"column_names": ["text", "labels", "id"], "label_names_file": "names.txt", "multi_label": True},
    ),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_every_label_form_loads_to_the_same_label_sets(tmp_path: Path, form: str) -> None:
    write, settings = FORMS[form]
    folder = write_splits(tmp_path / "data", write)
    data = load_data(DataConfig(dataset=str(folder), **settings), seed=0)
    assert data.multi_label and data.config.multi_label is True
    assert data.labels.names == NAMES
    assert data.train["label"].tolist() == EXPECTED
    assert data.validation["label"].tolist() == EXPECTED
    if form == "ids + names file, no header":
        assert data.train["text"].iloc[0] == 'you made my day, "quoted"'  # the CSV quoting is undone


def test_a_plain_label_column_stays_single_label(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["a b", "c d", "e f", "g h"] * 3, "label": ["x", "y"] * 6})
    frame.to_csv(tmp_path / "train.csv", index=False)
    data = load_data(DataConfig(dataset=str(tmp_path / "train.csv")), seed=0)
    assert not data.multi_label and data.config.multi_label is False
    assert set(data.train["label"]) <= {0, 1}


def test_a_list_on_a_single_label_run_is_an_error_naming_the_row(tmp_path: Path) -> None:
    folder = write_splits(tmp_path / "data", jsonl_with_lists)
    with pytest.raises(DataError, match=r"row 1 has a list of labels .* data.multi_label is false"):
        load_data(DataConfig(dataset=str(folder), multi_label=False), seed=0)


def test_an_id_outside_the_label_names_names_file_row_and_value(tmp_path: Path) -> None:
    folder = write_splits(tmp_path / "data", tsv_ids_without_header)
    text = (folder / "train.tsv").read_text(encoding="utf-8").replace("\tid3", "\tid3", 1).split("\n")
    text[3] = "this is outrageous\t0,7\tid3"
    (folder / "train.tsv").write_text("\n".join(text), encoding="utf-8")
    settings = FORMS["ids + names file, no header"][1]
    with pytest.raises(DataError, match=r"\[train\]: row 4: label id '7' is not a valid id; ids are 0..2"):
        load_data(DataConfig(dataset=str(folder), **settings), seed=0)


def test_a_label_unseen_in_training_names_the_split_row_and_value(tmp_path: Path) -> None:
    folder = write_splits(tmp_path / "data", jsonl_with_lists)
    lines = (folder / "validation.jsonl").read_text(encoding="utf-8").splitlines()
    lines[5] = json.dumps({"text": "so much love here", "labels": ["love", "envy"]})
    (folder / "validation.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"\[validation\]: row 6: label 'envy' is not one of the training labels"):
        load_data(DataConfig(dataset=str(folder)), seed=0)


def test_a_label_column_cell_that_is_not_0_or_1_names_row_and_column(tmp_path: Path) -> None:
    folder = write_splits(tmp_path / "data", csv_label_columns)
    frame = pd.read_csv(folder / "train.csv")
    frame.loc[2, "love"] = 2
    frame.to_csv(folder / "train.csv", index=False)
    with pytest.raises(DataError, match=r"row 3, label column 'love': '2' is not 0 or 1"):
        load_data(DataConfig(dataset=str(folder), label_columns=NAMES), seed=0)


def test_a_missing_label_column_and_a_missing_names_file_are_one_line_errors(tmp_path: Path) -> None:
    folder = write_splits(tmp_path / "data", csv_label_columns)
    with pytest.raises(DataError, match=r"no label column 'hate'"):
        load_data(DataConfig(dataset=str(folder), label_columns=[*NAMES, "hate"]), seed=0)
    folder = write_splits(tmp_path / "ids", tsv_ids_without_header)
    with pytest.raises(DataError, match=r"Label names file not found: nope.txt"):
        load_data(
            DataConfig(dataset=str(folder), column_names=["text", "labels", "id"], label_names_file="nope.txt"),
            seed=0,
        )


def test_multi_label_settings_that_contradict_each_other_are_refused() -> None:
    with pytest.raises(ConfigError, match="data.label_columns describes multi-label data"):
        DataConfig(label_columns=NAMES, multi_label=False)
    with pytest.raises(ConfigError, match="two or more distinct columns"):
        DataConfig(label_columns=["joy"])


def test_evaluation_files_read_label_sets_like_training(tmp_path: Path) -> None:
    folder = write_splits(tmp_path / "data", jsonl_with_lists)
    data = load_data(DataConfig(dataset=str(folder)), seed=0)
    frame = load_eval_file(str(folder / "validation.jsonl"), data.config, data.labels)
    assert frame["label"].tolist() == EXPECTED


def test_the_held_out_split_keeps_rare_labels_on_both_sides() -> None:
    # label 3 is on 4 rows of 40: a random 25% split leaves it out of validation about a third of the time.
    rows = [[0]] * 18 + [[1]] * 10 + [[2, 0]] * 8 + [[3]] * 4
    frame = pd.DataFrame({"text": [f"text {i}" for i in range(len(rows))], "label": rows})
    for seed in range(10):
        train, validation = split_validation(frame, 0.25, seed, multi_label_count=4)
        assert any(3 in ids for ids in train["label"]) and any(3 in ids for ids in validation["label"])
        assert len(train) + len(validation) == len(frame)


def test_multi_hot_targets_reach_the_batch_as_floats() -> None:
    tiny_tokenizer = build_tokenizer("distilbert")
    frame = pd.DataFrame({"text": [t for t, _ in ROWS], "label": EXPECTED})
    dataset = tokenize_frame(frame, tiny_tokenizer, max_length=16, num_labels=3)
    assert dataset["labels"][2] == [0.0, 1.0, 1.0] and dataset["labels"][1] == [0.0, 0.0, 0.0]
    batch = PaddingCollator.for_tokenizer(tiny_tokenizer)([dataset[i] for i in range(4)])
    assert batch["labels"].dtype.is_floating_point and batch["labels"].shape == (4, 3)
    assert np.array_equal(batch["labels"].numpy(), multi_hot(EXPECTED[:4], 3))


def test_the_summary_counts_labels_per_row_and_names_the_rarest() -> None:
    line = describe_label_sets(EXPECTED, NAMES, rarest=1)
    assert line.startswith("1.12 labels per row, 25.0% with several, 12.5% with none")
    # every label is on 3 rows: ties go to the lower id for the most frequent, the higher for the rarest
    assert "most frequent anger 37.5%" in line and "rarest (rows) love 3" in line


def test_hub_lists_of_classlabels_give_their_names(monkeypatch) -> None:
    import datasets

    features = datasets.Features(
        {"text": datasets.Value("string"), "labels": datasets.Sequence(datasets.ClassLabel(names=NAMES))}
    )

    def fake_load_dataset(name, subset=None, revision=None):
        ids = [[NAMES.index(n) for n in labels] for _, labels in ROWS]
        split = datasets.Dataset.from_dict({"text": [t for t, _ in ROWS], "labels": ids}, features=features)
        return datasets.DatasetDict({"train": split, "validation": split})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_data(DataConfig(dataset="someone/emotions:simplified"), seed=0)
    assert data.multi_label and data.labels.names == NAMES
    assert data.train["label"].tolist() == EXPECTED
