"""Tokenize standardized splits once, without padding: batches are padded dynamically by the collator."""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np
import pandas as pd

from distiltune.data.long_text import LongTextOptions, encode_documents
from distiltune.data.multilabel import is_list_cell, multi_hot

#: The column of a ``chunks`` split that names each window's document (its row in the frame).
DOCUMENT_COLUMN = "document"


def tokenize_frame(
    frame: pd.DataFrame,
    tokenizer: Any,
    max_length: int,
    long_text: LongTextOptions | None = None,
    num_labels: int | None = None,
) -> datasets.Dataset:
    """Token ids (at most ``max_length`` per row), labels and a ``length`` column for length-grouped batching.

    One row per text, cut as ``long_text`` says (default: its head, exactly as before the setting existed); with
    ``data.long_text=chunks`` one row per window, each with its document's label, and a ``document`` column (the
    frame row of each window) by which the Trainer's evaluation aggregates; the model never sees it (the Trainer
    drops the columns its forward does not take). Multi-label rows (a list of label ids each) get multi-hot float
    ``labels`` of width ``num_labels``."""
    texts = frame["text"].tolist()
    pairs = frame["text_pair"].tolist() if "text_pair" in frame.columns else None
    windows = encode_documents(tokenizer, texts, pairs, max_length=max_length, options=long_text)
    columns: dict[str, Any] = {key: list(value) for key, value in windows.columns.items()}
    columns["length"] = windows.lengths.tolist()
    if "label" in frame.columns:
        if is_multi_label_frame(frame):
            if num_labels is None:
                raise ValueError("multi-label rows need num_labels for their multi-hot targets")
            targets = multi_hot(frame["label"].tolist(), num_labels)
            columns["labels"] = targets[windows.document_index].tolist()
        else:
            columns["labels"] = frame["label"].astype(int).to_numpy()[windows.document_index].tolist()
    if long_text is not None and long_text.mode == "chunks":
        columns[DOCUMENT_COLUMN] = windows.document_index.tolist()
    return datasets.Dataset.from_dict(columns)


def is_multi_label_frame(frame: pd.DataFrame) -> bool:
    """Whether a standardized frame's labels are label sets (lists of ids) rather than one id per row."""
    return "label" in frame.columns and len(frame) > 0 and is_list_cell(frame["label"].iloc[0])


def token_lengths(frame: pd.DataFrame, tokenizer: Any) -> np.ndarray:
    """Untruncated token counts, for the dataset summary (how much truncation costs)."""
    texts = frame["text"].tolist()
    pairs = frame["text_pair"].tolist() if "text_pair" in frame.columns else None
    encoded = tokenizer(texts, pairs, truncation=False, padding=False, verbose=False)
    return np.asarray([len(ids) for ids in encoded["input_ids"]])
