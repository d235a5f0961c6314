"""Read datasets into pandas DataFrames, one per split: local files and folders, or the Hugging Face hub.

Local files are read here rather than through ``datasets.load_dataset("csv", ...)`` so that every failure
can name the file and line (a non-UTF-8 byte, a broken JSONL line, a ragged TSV row).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import pandas as pd

from distiltune.errors import DataError

logger = logging.getLogger("distiltune")

EXTENSIONS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev", "eval"),
    "test": ("test", "testing"),
}


def looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or Path(source).suffix.lower() in EXTENSIONS or Path(source).exists()


def read_local(source: str, column_names: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """A file becomes ``{"train": df}``; a folder becomes one entry per split file it holds. ``column_names``:
    CSV/TSV files have no header row and their columns get these names (``data.column_names``)."""
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"Data file not found: {path}.", "Check the path, or name a preset or hub dataset instead.")
    if path.is_file():
        return {"train": read_table(path, column_names)}
    splits: dict[str, pd.DataFrame] = {}
    for file in sorted(path.iterdir()):
        if file.suffix.lower() not in EXTENSIONS:
            continue
        for split, aliases in SPLIT_ALIASES.items():
            if file.stem.lower() in aliases:
                if split in splits:
                    raise DataError(f"{path}: more than one file for the {split} split.", "Keep one per split.")
                splits[split] = read_table(file, column_names)
    if "train" not in splits:
        raise DataError(
            f"{path}: no train file found.",
            f"A data folder needs train{{{','.join(EXTENSIONS)}}} (and optionally validation/dev and test files).",
        )
    return splits


def read_table(path: Path, column_names: list[str] | None = None) -> pd.DataFrame:
    """One file as a frame of strings (CSV/TSV), values (JSON) or typed columns (Parquet). ``column_names`` names
    the columns of a CSV/TSV file without a header row; other formats carry their names and ignore it."""
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise DataError(
            f"{path}: unsupported file type '{suffix or '(none)'}'.", f"Use one of {', '.join(EXTENSIONS)}."
        )
    if suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises many types for corrupt files
            raise DataError(f"{path}: cannot read Parquet ({_short(err)}).") from None
    else:
        text = _read_utf8(path)
        if not text.strip():
            raise DataError(f"{path}: the file is empty.", "Add a header row and at least one data row.")
        if suffix == ".csv":
            frame = _read_csv(path, text, column_names)
        elif suffix == ".tsv":
            frame = _read_tsv(path, text, column_names)
        else:
            frame = _read_json(path, text)
    if frame.empty:
        raise DataError(f"{path}: no data rows (only a header?).", "Add at least one labelled row.")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _read_utf8(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}: line {line} is not valid UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start}).",
            "Re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8).",
        ) from None
    return text.removeprefix("\ufeff")


def _read_csv(path: Path, text: str, column_names: list[str] | None = None) -> pd.DataFrame:
    headerless = {"header": None, "names": column_names} if column_names else {}
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""], **headerless)
    except pd.errors.ParserError as err:
        raise DataError(
            f"{path}: malformed CSV ({_short(err)}).", "Quote fields that contain commas or newlines."
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty.") from None
    if column_names and frame.index.nlevels > 1:  # more fields than names: pandas moves the extra into the index
        raise DataError(
            f"{path}: rows have more comma-separated fields than data.column_names ({len(column_names)}).",
            "Name every column in data.column_names.",
        )
    return frame


def _read_tsv(path: Path, text: str, column_names: list[str] | None = None) -> pd.DataFrame:
    """GLUE TSVs are unquoted and contain stray quote characters; exported TSVs are CSV-quoted. Try unquoted
    first and fall back to quoted parsing when the unquoted reading is ragged or shows wrapping quotes.
    ``column_names``: the file has no header row (its first line is data) and its columns get these names."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    rows = [line.split("\t") for line in lines if line != ""]
    if column_names:
        rows = [list(column_names), *rows]
    header = rows[0]
    ragged = next((i for i, row in enumerate(rows) if len(row) != len(header)), None)
    wrapped = any(len(cell) > 1 and cell[0] == '"' and cell[-1] == '"' for row in rows for cell in row)
    if ragged is None and not wrapped:
        return _frame(header, rows[1:])
    parsed = list(csv.reader(io.StringIO(text), delimiter="\t", quotechar='"'))
    parsed = [row for row in parsed if row]
    if column_names:
        parsed = [list(column_names), *parsed]
    bad = next((i for i, row in enumerate(parsed) if len(row) != len(parsed[0])), None)
    if bad is not None:
        # Without a header row the first line of the file is row 1 of ``rows`` (row 0 is the names we put there).
        offset = 0 if column_names else 1
        line = (ragged + offset) if ragged is not None else bad + offset
        raise DataError(
            f"{path}: row at line {line} has a different number of tab-separated fields than the "
            f"{'column names' if column_names else 'header'} ({len(header)}).",
            "Check for stray tabs or unbalanced quotes.",
        )
    return _frame(parsed[0], parsed[1:])


def _frame(header: list[str], rows: list[list[str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=header, dtype=str)
    return frame.replace({"": None})


def _read_json(path: Path, text: str) -> pd.DataFrame:
    stripped = text.lstrip()
    if path.suffix.lower() == ".json" and stripped.startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: invalid JSON at line {err.lineno} ({err.msg}).") from None
    else:
        records = []
        # split on "\n" only: splitlines() also breaks on U+2028 and friends, which JSON strings may hold raw.
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{path}: line {number} is not valid JSON ({err.msg}).",
                    "Fix or delete that line (JSONL needs one JSON object per line).",
                ) from None
            if not isinstance(record, dict):
                raise DataError(f"{path}: line {number} is not a JSON object.", "Each line must be {...}.")
            records.append(record)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise DataError(f"{path}: expected a list of JSON objects.")
    return pd.DataFrame.from_records(records)


def read_hub(name: str, revision: str | None = None) -> tuple[dict[str, pd.DataFrame], dict[str, list[str]]]:
    """Load ``name[:config]`` with ``datasets.load_dataset`` (honours HF_DATASETS_OFFLINE and the local cache).

    Returns the splits and, per column, the ClassLabel names the dataset declares.
    """
    import datasets

    dataset_id, _, subset = name.partition(":")
    try:
        loaded = datasets.load_dataset(dataset_id, subset or None, revision=revision)
    except FileNotFoundError as err:
        raise DataError(
            f"Dataset '{name}' is neither a local file nor reachable on the Hugging Face hub ({_short(err)}).",
            "Point --dataset at a local file or folder, or pre-download it into the HF cache (HF_HOME).",
        ) from None
    except (ConnectionError, OSError, ValueError) as err:
        raise DataError(
            f"Could not load dataset '{name}' from the Hugging Face hub or the local cache ({_short(err)}).",
            "Offline? Point --dataset at a local file or folder, or use a machine with the dataset in HF_HOME.",
        ) from None
    if not isinstance(loaded, datasets.DatasetDict):
        loaded = datasets.DatasetDict({"train": loaded})
    names: dict[str, list[str]] = {}
    for split in loaded.values():
        for column, feature in split.features.items():
            # A multi-label column is a list of ClassLabel ids (Sequence/List in datasets' features).
            inner = getattr(feature, "feature", None) if not isinstance(feature, datasets.ClassLabel) else feature
            if isinstance(inner, datasets.ClassLabel):
                names[column] = list(inner.names)
    return {split: ds.to_pandas() for split, ds in loaded.items()}, names


def _short(err: BaseException, limit: int = 200) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
