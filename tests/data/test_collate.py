"""The padding collator gives exactly what transformers' DataCollatorWithPadding gives, for every padding mode."""

from __future__ import annotations

import pytest
import torch
from transformers import DataCollatorWithPadding

from conftest import build_tokenizer
from distiltune.data.collate import PaddingCollator

TEXTS = ["great", "the movie was great and fun", "boring awful plot and poor acting overall", "love it"]
PAIRS = ["a", "the acting", "plot", "it was fun and great"]


def rows(tokenizer, pairs: list[str] | None = None, label_key: str = "labels") -> list[dict]:
    encoded = tokenizer(TEXTS, pairs, truncation=True, max_length=32, padding=False)
    keys = list(encoded.keys())
    return [{**{key: encoded[key][i] for key in keys}, label_key: i % 2} for i in range(len(TEXTS))]


def assert_same_batch(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> None:
    assert set(ours) == set(theirs)
    for key, expected in theirs.items():
        assert ours[key].dtype == expected.dtype, key
        assert torch.equal(ours[key], expected), key


@pytest.mark.parametrize("architecture", ["distilbert", "bert", "roberta"])
@pytest.mark.parametrize("with_pairs", [False, True])
@pytest.mark.parametrize(
    "padding", [{}, {"pad_to_multiple_of": 8}, {"max_length": 24}, {"max_length": 20, "pad_to_multiple_of": 8}]
)
def test_matches_transformers_collator(architecture: str, with_pairs: bool, padding: dict) -> None:
    tokenizer = build_tokenizer(architecture)
    batch = rows(tokenizer, PAIRS if with_pairs else None)
    reference = DataCollatorWithPadding(
        tokenizer,
        padding="max_length" if "max_length" in padding else "longest",
        max_length=padding.get("max_length"),
        pad_to_multiple_of=padding.get("pad_to_multiple_of"),
    )
    ours = PaddingCollator.for_tokenizer(tokenizer, **padding)(batch)
    assert_same_batch(ours, dict(reference(batch)))
    assert ours["input_ids"].shape[0] == len(TEXTS) and (ours["attention_mask"].sum(1) > 0).all()


def test_left_padding_and_a_nonzero_pad_type_id_match_too() -> None:
    tokenizer = build_tokenizer("bert")
    tokenizer.padding_side = "left"  # XLNet pads on the left, with token type 3
    tokenizer._pad_token_type_id = 3
    assert tokenizer.pad_token_type_id == 3
    batch = rows(tokenizer, PAIRS)
    ours = PaddingCollator.for_tokenizer(tokenizer, pad_to_multiple_of=8)(batch)
    assert_same_batch(ours, dict(DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)(batch)))
    assert ours["attention_mask"][0, 0] == 0 and ours["token_type_ids"][0, 0] == 3  # the short first row


def test_label_column_becomes_labels_and_float_labels_stay_float32() -> None:
    tokenizer = build_tokenizer("distilbert")
    batch = rows(tokenizer, label_key="label")
    assert_same_batch(PaddingCollator.for_tokenizer(tokenizer)(batch), dict(DataCollatorWithPadding(tokenizer)(batch)))
    scores = [{**row, "label": float(i) / 2} for i, row in enumerate(batch)]
    collated = PaddingCollator.for_tokenizer(tokenizer)(scores)
    assert collated["labels"].dtype == torch.float32
    assert collated["labels"].tolist() == [0.0, 0.5, 1.0, 1.5]


def test_refuses_rows_longer_than_static_length_and_tokenizers_without_padding() -> None:
    tokenizer = build_tokenizer("distilbert")
    with pytest.raises(ValueError, match="longer than max_length 4"):
        PaddingCollator.for_tokenizer(tokenizer, max_length=4)(rows(tokenizer))
    tokenizer.pad_token = None
    with pytest.raises(ValueError, match="no padding token"):
        PaddingCollator.for_tokenizer(tokenizer)
