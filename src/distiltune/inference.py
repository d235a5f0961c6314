"""Batched inference shared by training, ``evaluate``, ``predict`` and serving.

Inputs are sorted by length so each batch pads to its own longest member, and results come back in
input order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from distiltune.data.collate import PaddingCollator
from distiltune.hardware import autocast_context


def predict_logits(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    *,
    max_length: int = 256,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    sort_by_length: bool = True,
    dynamic_padding: bool = True,
    max_batch_tokens: int | None = None,
    truncation_side: str | None = None,
) -> np.ndarray:
    """Logits for every input, in input order (float32 numpy array of shape [n, num_labels]).

    ``sort_by_length`` batches inputs of similar length together; ``dynamic_padding`` pads each batch to its
    longest member (else to ``max_length``). ``max_batch_tokens`` also caps each batch's padded size (rows x
    longest row), so long inputs go in small batches and short ones in batches of up to ``batch_size``.
    None of these change the results beyond float rounding. ``truncation_side`` ("right" or "left") overrides the
    tokenizer's side for inputs longer than ``max_length``: "left" keeps their end.
    """
    if pairs is not None and len(pairs) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(pairs)} pairs")
    if len(texts) == 0:
        return np.zeros((0, model.config.num_labels), dtype=np.float32)
    encoded = _tokenize(tokenizer, texts, pairs, max_length, truncation_side)
    lengths = np.array([len(ids) for ids in encoded["input_ids"]])
    order = np.argsort(lengths, kind="stable") if sort_by_length else np.arange(len(lengths))
    keys = [key for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoded]
    collate = PaddingCollator.for_tokenizer(tokenizer, max_length=None if dynamic_padding else max_length)
    model.eval()
    outputs: list[np.ndarray] = []
    with torch.inference_mode(), autocast_context(device, precision):
        for batch_indices in _batches(order, lengths, batch_size, max_batch_tokens, max_length, dynamic_padding):
            batch = collate([{key: encoded[key][i] for key in keys} for i in batch_indices])
            batch = {key: value.to(device) for key, value in batch.items()}
            logits = model(**batch).logits
            outputs.append(logits.float().cpu().numpy())
    sorted_logits = np.concatenate(outputs)
    logits = np.empty_like(sorted_logits)
    logits[order] = sorted_logits
    return logits


def _tokenize(
    tokenizer: Any, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int, truncation_side: str | None
) -> Any:
    def encode() -> Any:
        return tokenizer(
            list(texts),
            list(pairs) if pairs is not None else None,
            truncation=True,
            max_length=max_length,
            padding=False,
        )

    if truncation_side is None or truncation_side == tokenizer.truncation_side:
        return encode()
    if truncation_side not in ("right", "left"):
        raise ValueError(f"truncation_side must be 'right' or 'left', not {truncation_side!r}")
    # The side is a tokenizer attribute, not a call argument: set it for this call only.
    previous = tokenizer.truncation_side
    tokenizer.truncation_side = truncation_side
    try:
        return encode()
    finally:
        tokenizer.truncation_side = previous


def _batches(
    order: np.ndarray,
    lengths: np.ndarray,
    batch_size: int,
    max_batch_tokens: int | None,
    max_length: int,
    dynamic_padding: bool,
) -> Iterator[np.ndarray]:
    """Consecutive runs of ``order`` with at most ``batch_size`` rows and, when ``max_batch_tokens`` is set, at
    most that many padded tokens (a row longer than the budget goes alone)."""
    if not max_batch_tokens:
        for start in range(0, len(order), batch_size):
            yield order[start : start + batch_size]
        return
    start = 0
    longest = 0
    for position, index in enumerate(order):
        row_length = int(lengths[index]) if dynamic_padding else max_length
        candidate = max(longest, row_length)
        rows = position - start
        if rows and (rows >= batch_size or candidate * (rows + 1) > max_batch_tokens):
            yield order[start:position]
            start, candidate = position, row_length
        longest = candidate
    if start < len(order):
        yield order[start:]
