"""Tokenize standardized splits once, without padding: batches are padded dynamically by the collator."""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np
import pandas as pd

from distiltune.data.long_text import LongTextOptions, encode_documents

#: The column of a ``chunks`` split that names each window's document (its row in the frame).
DOCUMENT_COLUMN = "document"


def tokenize_frame(
    frame: pd.DataFrame, tokenizer: Any, max_length: int, long_text: LongTextOptions | None = None
) -> datasets.Dataset:
    """Token ids (at most ``max_length`` per row), labels and a ``length`` column for length-grouped batching.

    One row per text, cut as ``long_text`` says (default: its head, exactly as before the setting existed); with
    ``data.long_text=chunks`` one row per window, each with its document's label, and a ``document`` column (the
    frame row of each window) by which the Trainer's evaluation aggregates; the model never sees it (the Trainer
    drops the columns its forward does not take)."""
    texts = frame["text"].tolist()
    pairs = frame["text_pair"].tolist() if "text_pair" in frame.columns else None
    windows = encode_documents(tokenizer, texts, pairs, max_length=max_length, options=long_text)
    columns: dict[str, Any] = {key: list(value) for key, value in windows.columns.items()}
    columns["length"] = windows.lengths.tolist()
    if "label" in frame.columns:
        columns["labels"] = frame["label"].astype(int).to_numpy()[windows.document_index].tolist()
    if long_text is not None and long_text.mode == "chunks":
        columns[DOCUMENT_COLUMN] = windows.document_index.tolist()
    return datasets.Dataset.from_dict(columns)


def token_lengths(frame: pd.DataFrame, tokenizer: Any) -> np.ndarray:
    """Untruncated token counts, for the dataset summary (how much truncation costs)."""
    texts = frame["text"].tolist()
    pairs = frame["text_pair"].tolist() if "text_pair" in frame.columns else None
    encoded = tokenizer(texts, pairs, truncation=False, padding=False, verbose=False)
    return np.asarray([len(ids) for ids in encoded["input_ids"]])
