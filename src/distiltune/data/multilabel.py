"""Multi-label data: every text carries a set of labels (possibly none), read from any of the forms users have.

A label cell may be a list (JSON, Parquet, a hub ``Sequence``/``List`` column), a delimited string (``"4,27"``; the
separator is ``data.label_separator``, "," by default), a JSON list in a string (``"[4, 27]"``, as a list column
comes out of a CSV export), or one 0/1 column per label (``data.label_columns``: the column names are the label
names). Empty cells and empty lists are rows with no label (an all-zero target). Labels are label names or integer
ids; ids map to names through ``data.label_names``, ``data.label_names_file`` or the hub's ``ClassLabel`` names.

In a standardized frame a multi-label row's ``label`` is the sorted list of its label ids; the task turns it into a
multi-hot target when the model needs one (:func:`multi_hot`).
"""

from __future__ import annotations

import json
import numbers
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distiltune.errors import DataError

#: The separator of delimited label strings when ``data.label_separator`` is unset.
DEFAULT_LABEL_SEPARATOR = ","
#: Truthy and falsy cells of a 0/1 label column (``data.label_columns``).
_ON = {"1", "1.0", "true", "yes"}
_OFF = {"0", "0.0", "false", "no", ""}


def is_list_cell(value: Any) -> bool:
    """A cell that holds several labels by its type (not a string that might be split)."""
    return isinstance(value, list | tuple | np.ndarray)


def has_list_labels(labels: pd.Series) -> bool:
    return bool(labels.map(is_list_cell).any())


def first_list_row(labels: pd.Series) -> int | None:
    """The position of the first list-valued cell (for an error that names its row), or None."""
    found = labels.map(is_list_cell)
    return int(np.flatnonzero(found.to_numpy())[0]) if found.any() else None


def parse_label_cell(value: Any, separator: str | None, source: str, row: int) -> list[Any]:
    """The labels of one cell as a list of raw values (names or ids), in the cell's order; [] for no label."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if is_list_cell(value):
        items = list(np.asarray(value).tolist()) if isinstance(value, np.ndarray) else list(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text or text.lower() in ("nan", "none", "null", "[]"):
            return []
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                raise DataError(
                    f"{source}: row {row + 1}: the label cell {value!r} starts like a JSON list but is not one.",
                    'Write it as a JSON list (["joy", "love"] or [4, 27]) or a delimited string (joy,love).',
                ) from None
            if not isinstance(parsed, list):
                raise DataError(f"{source}: row {row + 1}: the label cell {value!r} is not a list.")
            items = parsed
        else:
            items = [part.strip() for part in text.split(separator or DEFAULT_LABEL_SEPARATOR)]
            items = [part for part in items if part]
    elif isinstance(value, bool):
        raise DataError(
            f"{source}: row {row + 1}: the label cell is {value!r}, not a label.",
            "For one 0/1 column per label, name the columns with data.label_columns (--label-columns a,b,c).",
        )
    elif isinstance(value, numbers.Number):
        items = [value]
    else:
        raise DataError(f"{source}: row {row + 1}: cannot read labels from a {type(value).__name__} ({value!r}).")
    for item in items:
        if item is None or is_list_cell(item) or isinstance(item, dict | bool):
            raise DataError(
                f"{source}: row {row + 1}: {item!r} in the label cell {value!r} is not a label name or id.",
                "Each label is a name or an integer id.",
            )
    return items


def label_sets(labels: pd.Series, separator: str | None, source: str) -> list[list[Any]]:
    return [parse_label_cell(value, separator, source, row) for row, value in enumerate(labels.tolist())]


def label_sets_from_columns(frame: pd.DataFrame, columns: Sequence[str], source: str) -> list[list[str]]:
    """Per row, the names of the 0/1 label columns that hold a 1 (true/yes count as 1, an empty cell as 0)."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: no label column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}. "
            f"Columns are: {', '.join(map(str, frame.columns))}.",
            "Fix data.label_columns (--label-columns).",
        )
    sets: list[list[str]] = [[] for _ in range(len(frame))]
    for column in columns:
        for row, value in enumerate(frame[column].tolist()):
            if _flag(value, source, column, row):
                sets[row].append(column)
    return sets


def _flag(value: Any, source: str, column: str, row: int) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return False
    if isinstance(value, bool | np.bool_):
        return bool(value)
    text = str(value).strip().lower()
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        text = str(float(value)) if float(value) in (0.0, 1.0) else text
    if text in _ON:
        return True
    if text in _OFF:
        return False
    raise DataError(
        f"{source}: row {row + 1}, label column '{column}': {value!r} is not 0 or 1.",
        "A label column holds 1 where the row has that label and 0 (or nothing) where it has not.",
    )


def read_label_names_file(path: str, dataset: str | None = None) -> list[str]:
    """One label name per line (blank lines skipped). A relative path is read as given, else inside the dataset
    folder (``data.label_names_file: emotions.txt`` next to the data files)."""
    candidates = [Path(path).expanduser()]
    if dataset and not Path(path).is_absolute():
        folder = Path(dataset).expanduser()
        candidates.append((folder if folder.is_dir() else folder.parent) / path)
    found = next((candidate for candidate in candidates if candidate.is_file()), None)
    if found is None:
        raise DataError(
            f"Label names file not found: {path} (looked in {', '.join(str(c) for c in candidates)}).",
            "Fix data.label_names_file: a text file with one label name per line.",
        )
    names = [line.strip() for line in found.read_text(encoding="utf-8").split("\n") if line.strip()]
    if len(set(names)) != len(names):
        duplicate = next(name for name, count in Counter(names).items() if count > 1)
        raise DataError(f"{found}: the label name '{duplicate}' appears twice.", "Each line names one label.")
    if len(names) < 2:
        raise DataError(f"{found}: holds {len(names)} label name(s); a classifier needs at least two.")
    return names


def is_integer_label(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Number):
        return float(value).is_integer()
    if isinstance(value, str):
        try:
            return float(value).is_integer()
        except ValueError:
            return False
    return False


def multi_hot(label_ids: Sequence[Sequence[int]], num_labels: int) -> np.ndarray:
    """``[rows, num_labels]`` float32 targets: 1 where the row has the label."""
    target = np.zeros((len(label_ids), num_labels), dtype=np.float32)
    for row, ids in enumerate(label_ids):
        target[row, list(ids)] = 1.0
    return target


def describe_label_sets(label_ids: Sequence[Sequence[int]], names: Sequence[str], rarest: int = 3) -> str:
    """The dataset summary's line for a multi-label split: labels per row, rows with several and with none, the most
    and least frequent labels (rows carrying each)."""
    rows = len(label_ids)
    if rows == 0:
        return "no rows"
    sizes = np.asarray([len(ids) for ids in label_ids])
    counts = Counter(label for ids in label_ids for label in ids)
    by_count = sorted(range(len(names)), key=lambda i: (-counts.get(i, 0), i))
    common = ", ".join(f"{names[i]} {100 * counts.get(i, 0) / rows:.1f}%" for i in by_count[:rarest])
    rare = ", ".join(f"{names[i]} {counts.get(i, 0)}" for i in reversed(by_count[-rarest:]))
    return (
        f"{sizes.mean():.2f} labels per row, {100 * (sizes > 1).mean():.1f}% with several, "
        f"{100 * (sizes == 0).mean():.1f}% with none; most frequent {common}; rarest (rows) {rare}"
    )


def label_frequencies(label_ids: Sequence[Sequence[int]], num_labels: int) -> np.ndarray:
    """Rows carrying each label."""
    counts = np.zeros(num_labels, dtype=np.int64)
    for ids in label_ids:
        counts[list(ids)] += 1
    return counts


def stratification_key(label_ids: Sequence[Sequence[int]], num_labels: int) -> list[int]:
    """One class per row for a stratified split of multi-label rows: its rarest label (-1 for no label), so every
    label with two or more rows lands on both sides of a held-out split."""
    counts = label_frequencies(label_ids, num_labels)
    return [min(ids, key=lambda i: (counts[i], i)) if len(ids) else -1 for ids in label_ids]


__all__ = [
    "DEFAULT_LABEL_SEPARATOR",
    "describe_label_sets",
    "first_list_row",
    "has_list_labels",
    "is_integer_label",
    "is_list_cell",
    "label_frequencies",
    "label_sets",
    "label_sets_from_columns",
    "multi_hot",
    "parse_label_cell",
    "read_label_names_file",
    "stratification_key",
]
