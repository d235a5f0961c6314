"""Tokenize a split once and reuse it: an on-disk cache keyed by the data, the tokenizer and how texts are cut.

The key is a sha256 over (a) the split's content (pandas' per-row hash of every column, in order), (b) the
tokenizer's full definition (its serialized ``tokenizer.json`` for fast tokenizers, else its vocabulary and
special tokens), (c) ``max_length`` and (d) the long-text settings that change the rows
(``LongTextOptions.cache_token``; nothing for the default ``head``), plus a format version. Change any of them
and the key changes, so a stale entry is never read. Entries are written to a temporary folder and renamed into
place, so an interrupted run never leaves half an entry.

The cache lives in ``$DISTILTUNE_CACHE_DIR/tokenized`` (default ``~/.cache/distiltune/tokenized``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import datasets
import pandas as pd

from distiltune.data.long_text import LongTextOptions
from distiltune.data.tokenize import is_multi_label_frame, tokenize_frame

logger = logging.getLogger("distiltune")

CACHE_ENV = "DISTILTUNE_CACHE_DIR"
#: Bump when the cached columns change, so old entries are ignored.
FORMAT_VERSION = 1


def cache_root() -> Path:
    """The distiltune cache folder: ``$DISTILTUNE_CACHE_DIR`` or ``~/.cache/distiltune``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "distiltune"


def split_content_hash(frame: pd.DataFrame) -> str:
    """A content hash of a split: the same rows in the same order give the same hash."""
    digest = hashlib.sha256()
    digest.update(json.dumps(list(map(str, frame.columns))).encode())
    if is_multi_label_frame(frame):  # lists are unhashable for pandas: hash their text form
        frame = frame.assign(label=frame["label"].map(lambda ids: ",".join(map(str, ids))))
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of everything that decides the token ids: vocabulary, normalizer, post-processor, specials."""
    digest = hashlib.sha256()
    digest.update(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = json.loads(backend.to_str())
        # Truncation/padding are per-call state that every tokenizer call rewrites: not part of its identity.
        definition.pop("truncation", None)
        definition.pop("padding", None)
        digest.update(json.dumps(definition, sort_keys=True).encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    specials = {
        "special": getattr(tokenizer, "special_tokens_map", {}),
        "inputs": list(getattr(tokenizer, "model_input_names", [])),
        "padding_side": getattr(tokenizer, "padding_side", None),
        "truncation_side": getattr(tokenizer, "truncation_side", None),
    }
    digest.update(json.dumps(specials, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def cache_key(
    frame: pd.DataFrame,
    tokenizer: Any,
    max_length: int,
    long_text: LongTextOptions | None = None,
    num_labels: int | None = None,
) -> str:
    parts = [f"v{FORMAT_VERSION}", split_content_hash(frame), tokenizer_fingerprint(tokenizer), str(max_length)]
    if is_multi_label_frame(frame):  # the width of the multi-hot targets (single-label keys stay as they were)
        parts.append(f"labels{num_labels}")
    # head (the default) adds nothing, so its entries keep the keys they had before data.long_text existed.
    reading = long_text.cache_token() if long_text is not None else ""
    if reading:
        parts.append(reading)
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def cached_tokenize(
    frame: pd.DataFrame,
    tokenizer: Any,
    max_length: int,
    cache_dir: str | Path | None = None,
    long_text: LongTextOptions | None = None,
    num_labels: int | None = None,
) -> tuple[datasets.Dataset, bool]:
    """``tokenize_frame`` through the cache. Returns the dataset and whether it came from the cache."""
    root = Path(cache_dir) if cache_dir is not None else cache_root() / "tokenized"
    entry = root / cache_key(frame, tokenizer, max_length, long_text, num_labels)
    if (entry / "dataset_info.json").is_file():
        try:
            # keep_in_memory: the cache entry may be replaced later; never hold it open by memory map.
            return datasets.load_from_disk(str(entry), keep_in_memory=True), True
        except Exception as err:  # a corrupt entry is rebuilt, never fatal
            logger.warning("Ignoring unreadable tokenization cache entry %s (%s).", entry, err)
            shutil.rmtree(entry, ignore_errors=True)
    dataset = tokenize_frame(frame, tokenizer, max_length, long_text, num_labels)
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
        _save_quietly(dataset, staging)
        try:
            staging.rename(entry)
        except OSError:  # another process wrote the same entry first: theirs is identical
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as err:
        logger.warning("Could not write the tokenization cache under %s (%s); continuing without it.", root, err)
    return dataset, False


def _save_quietly(dataset: datasets.Dataset, path: Path) -> None:
    """save_to_disk without its progress bar (a cache write is not news)."""
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        dataset.save_to_disk(str(path))
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


__all__ = ["CACHE_ENV", "cache_key", "cache_root", "cached_tokenize", "split_content_hash", "tokenizer_fingerprint"]
