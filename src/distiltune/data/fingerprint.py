"""Short content hashes of the splits and the token ids a run saw.

Every run records them in ``metrics.json``; ``compare`` checks that all its runs share them, which is the
evidence that every method was trained and evaluated on identical data and tokenization.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

#: Hex digits kept: enough to tell datasets apart, short enough to read in a table.
DIGEST_LENGTH = 16


def frame_fingerprint(frame: pd.DataFrame | None) -> str | None:
    """Hash of the rows (text, text pair, label) in their order."""
    if frame is None:
        return None
    digest = hashlib.sha256()
    columns = [name for name in ("text", "text_pair", "label") if name in frame.columns]
    for row in frame[columns].itertuples(index=False, name=None):
        digest.update("\x1f".join(map(str, row)).encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()[:DIGEST_LENGTH]


def splits_fingerprint(splits: dict[str, pd.DataFrame | None]) -> dict[str, str | None]:
    return {name: frame_fingerprint(frame) for name, frame in splits.items()}


def token_fingerprint(*datasets: Any) -> str:
    """Hash of the token ids of tokenized datasets (``input_ids`` rows, in order)."""
    digest = hashlib.sha256()
    for dataset in datasets:
        rows: Iterable[Any] = dataset["input_ids"]
        for ids in rows:
            digest.update(np.asarray(ids, dtype=np.int64).tobytes())
            digest.update(b"|")
        digest.update(b"#")
    return digest.hexdigest()[:DIGEST_LENGTH]
