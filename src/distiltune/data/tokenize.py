"""Tokenize standardized splits once, without padding: batches are padded dynamically by the collator."""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np
import pandas as pd


def tokenize_frame(frame: pd.DataFrame, tokenizer: Any, max_length: int) -> datasets.Dataset:
    """Token ids (truncated to ``max_length``), labels and a ``length`` column for length-grouped batching."""
    texts = frame["text"].tolist()
    pairs = frame["text_pair"].tolist() if "text_pair" in frame.columns else None
    encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=False)
    columns: dict[str, Any] = {key: list(value) for key, value in encoded.items()}
    columns["length"] = [len(ids) for ids in encoded["input_ids"]]
    if "label" in frame.columns:
        columns["labels"] = frame["label"].astype(int).tolist()
    return datasets.Dataset.from_dict(columns)


def token_lengths(frame: pd.DataFrame, tokenizer: Any) -> np.ndarray:
    """Untruncated token counts, for the dataset summary (how much truncation costs)."""
    texts = frame["text"].tolist()
    pairs = frame["text_pair"].tolist() if "text_pair" in frame.columns else None
    encoded = tokenizer(texts, pairs, truncation=False, padding=False, verbose=False)
    return np.asarray([len(ids) for ids in encoded["input_ids"]])
