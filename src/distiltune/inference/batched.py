"""Batched inference: the one path by which training's final evaluation, ``evaluate``, ``predict``, the export's
parity check and serving turn texts into logits.

Inputs are sorted by length so each batch pads to its own longest member, batches are cut under a row cap and a
padded-token budget, and results come back in input order. A text longer than the max length is read as the run's
``data.long_text`` says; with ``chunks`` its windows are batched like any other rows and their logits aggregated
into one row per text, so every caller gets document-level logits. How all of that is done is decided once, into
an :class:`InferenceSettings`, from the run's config, the device and the backend.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from distiltune.data.collate import PaddingCollator
from distiltune.data.long_text import LongTextOptions, aggregate_windows, encode_documents
from distiltune.hardware import autocast_context
from distiltune.inference.backends import get_backend

#: The Trainer's evaluation batch size when ``train.eval_batch_size`` is unset. On a CPU small batches are faster: the
#: attention scores of a 32 x 512-token batch (12 heads) take 400 MB and fall out of cache. Measured on MiniLM, IMDb,
#: max length 512, 2 cores: batch 8 against 32 was 1.26x faster for torch fp32. A GPU wants large batches.
DEFAULT_EVAL_BATCH_SIZE = {"cpu": 8, "cuda": 64, "mps": 32}

#: distiltune's own inference (final evaluation, ``evaluate``, ``predict``, export parity) batches length-sorted rows
#: under a padded-token budget when ``train.eval_batch_size`` and ``train.eval_batch_tokens`` are both unset: long
#: texts go a few at a time, short ones up to :data:`TOKEN_BUDGET_MAX_ROWS` at a time. Measured on MiniLM, 2 cores,
#: against a fixed batch of 8 (IMDb reviews, max length 512 / SST-2 sentences of 25 tokens on average): torch fp32
#: with 2048 tokens 1.04x / 1.20x; ONNX int8 with 512 tokens 1.20x / 1.09x (its attention kernel slows down with
#: padding and batch size more than torch's SDPA does). Each backend declares its budget
#: (:attr:`~distiltune.inference.backends.Backend.cpu_batch_tokens`). A GPU has no budget: it wants full batches.
TOKEN_BUDGET_MAX_ROWS = 64


def resolve_eval_batch_size(requested: int | None, device_type: str) -> int:
    """The Trainer's evaluation batch size: ``train.eval_batch_size`` when set, else the device's default."""
    return requested or DEFAULT_EVAL_BATCH_SIZE.get(device_type, 8)


@dataclass(frozen=True)
class InferenceBatching:
    """How :func:`predict_logits` cuts length-sorted inputs into batches."""

    batch_size: int
    """At most this many rows per batch."""
    max_batch_tokens: int | None
    """At most this many padded tokens (rows x longest row) per batch; None: no budget."""


def resolve_inference_batching(
    batch_size: int | None, batch_tokens: int | None, device_type: str, backend: str = "torch"
) -> InferenceBatching:
    """``train.eval_batch_size`` / ``train.eval_batch_tokens`` resolved for a device and backend.

    A batch size the user sets is taken as is (no budget unless ``batch_tokens`` is set too); ``batch_tokens=0``
    turns the budget off; with neither set the device and backend defaults apply.
    """
    if batch_tokens is not None:
        tokens = batch_tokens or None
    elif batch_size is None:
        tokens = get_backend(backend).cpu_batch_tokens if device_type == "cpu" else None
    else:
        tokens = None
    if batch_size is None:
        batch_size = TOKEN_BUDGET_MAX_ROWS if tokens else DEFAULT_EVAL_BATCH_SIZE.get(device_type, 8)
    return InferenceBatching(batch_size=batch_size, max_batch_tokens=tokens)


@dataclass(frozen=True)
class InferenceSettings:
    """How texts become model batches, resolved once (from the run's config, the device and the backend)."""

    max_length: int
    """Longest input in tokens; longer ones are truncated."""
    batch_size: int = 64
    """At most this many rows per batch."""
    max_batch_tokens: int | None = None
    """At most this many padded tokens (rows x longest row) per batch; None: rows only."""
    sort_by_length: bool = True
    """Batch inputs of similar length together (results still come back in input order)."""
    dynamic_padding: bool = True
    """Pad each batch to its longest member instead of to ``max_length``."""
    device: Any = "cpu"
    precision: str = "fp32"
    """bf16/fp16 run the model under autocast; fp32 (and ONNX) run as is."""
    truncation_side: str | None = None
    """With ``long_text`` head: "left" keeps the end of inputs longer than ``max_length``; None keeps the
    tokenizer's side ("right"). Other modes choose the kept tokens themselves and must leave it None."""
    long_text: LongTextOptions = LongTextOptions()
    """How texts longer than ``max_length`` are read (``data.long_text``); with chunks, one row per text still."""

    @classmethod
    def for_run(
        cls,
        max_length: int,
        train: Any,
        device: Any,
        precision: str,
        backend: str = "torch",
        batch_size: int | None = None,
        long_text: LongTextOptions | None = None,
    ) -> InferenceSettings:
        """The settings a run's ``train.*`` keys (and its ``data.long_text`` options) give on ``device`` for
        ``backend`` (``batch_size`` overrides the config's ``train.eval_batch_size``)."""
        batching = resolve_inference_batching(
            batch_size or train.eval_batch_size, train.eval_batch_tokens, torch.device(device).type, backend
        )
        return cls(
            max_length=max_length,
            batch_size=batching.batch_size,
            max_batch_tokens=batching.max_batch_tokens,
            sort_by_length=train.sort_by_length,
            dynamic_padding=train.dynamic_padding,
            device=device,
            precision=precision,
            long_text=long_text or LongTextOptions(),
        )

    def with_batching(self, batching: InferenceBatching) -> InferenceSettings:
        return replace(self, batch_size=batching.batch_size, max_batch_tokens=batching.max_batch_tokens)


def predict_logits(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    pairs: Sequence[str] | None,
    settings: InferenceSettings,
) -> np.ndarray:
    """Logits for every input, in input order (float32 numpy array of shape [n, num_labels]).

    ``settings.sort_by_length`` batches inputs of similar length together; ``dynamic_padding`` pads each batch to
    its longest member (else to ``max_length``). ``max_batch_tokens`` also caps each batch's padded size (rows x
    longest row), so long inputs go in small batches and short ones in batches of up to ``batch_size``. None of
    these change the results beyond float rounding.

    ``settings.long_text`` says how a text longer than ``max_length`` is read. With ``chunks`` each text becomes
    several windows, batched with every other row, and its logits are its windows' logits aggregated (mean, or
    each label's max: :func:`~distiltune.data.long_text.aggregate_windows`): one row per input still.
    """
    if pairs is not None and len(pairs) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(pairs)} pairs")
    if len(texts) == 0:
        return np.zeros((0, model.config.num_labels), dtype=np.float32)
    max_length = settings.max_length
    long_text = settings.long_text
    windows = None
    if long_text.mode == "head":
        encoded = tokenize_for_inference(tokenizer, texts, pairs, max_length, settings.truncation_side)
    else:
        if settings.truncation_side is not None:
            raise ValueError(f"truncation_side applies to data.long_text=head only, not {long_text.mode}")
        windows = encode_documents(tokenizer, texts, pairs, max_length=max_length, options=long_text)
        encoded = windows.columns
    lengths = np.array([len(ids) for ids in encoded["input_ids"]])
    order = np.argsort(lengths, kind="stable") if settings.sort_by_length else np.arange(len(lengths))
    keys = [key for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoded]
    collate = PaddingCollator.for_tokenizer(tokenizer, max_length=None if settings.dynamic_padding else max_length)
    model.eval()
    outputs: list[np.ndarray] = []
    batches = batch_indices(
        order, lengths, settings.batch_size, settings.max_batch_tokens, max_length, settings.dynamic_padding
    )
    with torch.inference_mode(), autocast_context(settings.device, settings.precision):
        for indices in batches:
            batch = collate([{key: encoded[key][i] for key in keys} for i in indices])
            batch = {key: value.to(settings.device) for key, value in batch.items()}
            logits = model(**batch).logits
            outputs.append(logits.float().cpu().numpy())
    sorted_logits = np.concatenate(outputs)
    logits = np.empty_like(sorted_logits)
    logits[order] = sorted_logits
    if windows is None or windows.one_per_document:
        return logits
    return aggregate_windows(logits, windows.document_index, long_text.aggregation, windows.num_documents)


def tokenize_for_inference(
    tokenizer: Any, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int, truncation_side: str | None
) -> Any:
    """Token ids (unpadded) truncated to ``max_length`` on ``truncation_side`` (None: the tokenizer's own side)."""

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


def batch_indices(
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


__all__ = [
    "InferenceBatching",
    "InferenceSettings",
    "batch_indices",
    "predict_logits",
    "resolve_eval_batch_size",
    "resolve_inference_batching",
]
