"""Load any supported dataset into clean ``text[, text_pair], label`` splits with a fixed label space.

``load_data`` resolves presets, reads local files or the hub, maps columns, drops unusable rows, builds
the label space from the training split and splits off a stratified validation set when there is none.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from distiltune.data.columns import (
    Columns,
    LabelSpace,
    build_label_space,
    build_multi_label_space,
    resolve_columns,
    standardize,
)
from distiltune.data.config import DataConfig
from distiltune.data.multilabel import (
    first_list_row,
    label_sets,
    label_sets_from_columns,
    read_label_names_file,
    stratification_key,
)
from distiltune.data.sources import SPLIT_ALIASES, looks_like_path, read_hub, read_local, read_table
from distiltune.errors import DataError
from distiltune.presets import Preset, get_preset, presets

logger = logging.getLogger("distiltune")
#: Tokens per example when neither the config nor a preset sets ``data.max_length`` (see config.resolve_settings).
DEFAULT_MAX_LENGTH = 256


@dataclass
class PreparedData:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame | None
    labels: LabelSpace
    config: DataConfig
    """The data config with every automatic choice filled in (columns, label names, splits)."""

    @property
    def is_pair(self) -> bool:
        return "text_pair" in self.train.columns

    @property
    def multi_label(self) -> bool:
        """Each text carries a set of label ids (its ``label`` cell is a sorted list of ids, possibly empty)."""
        return self.labels.multi_label

    def splits(self) -> dict[str, pd.DataFrame]:
        out = {"train": self.train, "validation": self.validation}
        if self.test is not None:
            out["test"] = self.test
        return out


def load_data(config: DataConfig, seed: int = 42) -> PreparedData:
    """Load, map and split the data; ``config.split_seed`` (when set) replaces ``seed`` for the splits."""
    seed = config.split_seed if config.split_seed is not None else seed
    config = _apply_preset(config, dataset_preset(config.dataset))
    raw, declared_names = read_source(config.dataset, config.column_names)
    if config.train_split not in raw:
        raise DataError(
            f"{config.dataset}: no '{config.train_split}' split; splits are {', '.join(raw)}.", "Set data.train_split."
        )
    train_source = f"{config.dataset} [{config.train_split}]"
    train_raw = raw[config.train_split]
    columns = _label_columns(
        resolve_columns(
            train_raw,
            train_source,
            config.text_column,
            config.text_pair_column,
            config.label_column,
            need_label=config.label_columns is None,
        ),
        config,
    )
    names = (
        config.label_names
        or (read_label_names_file(config.label_names_file, config.dataset) if config.label_names_file else None)
        or declared_names.get(columns.label or "")
    )
    multi_label = _is_multi_label(config, train_raw, columns, train_source)
    train = _standardize(train_raw, columns, train_source, config, multi_label)
    if multi_label:
        sets = _label_sets(train, config, train_source)
        labels = build_multi_label_space(sets, train_source, list(config.label_columns or []) or names)
        train["label"] = labels.encode_sets(sets, train_source)
    else:
        labels = build_label_space(train["label"], train_source, names)
        train["label"] = labels.encode(train["label"], config.dataset)

    validation_split = config.validation_split or _find_split(raw, "validation", exclude=config.train_split)
    test_split = config.test_split or _find_split(raw, "test", exclude=config.train_split)
    for name, kind in ((validation_split, "validation"), (test_split, "test")):
        if name is not None and name not in raw:
            raise DataError(f"{config.dataset}: no split '{name}' for {kind}; splits are {', '.join(raw)}.")

    def prepare(split: str) -> pd.DataFrame | None:
        frame = raw[split]
        source_name = f"{config.dataset} [{split}]"
        if not multi_label and columns.label in frame.columns and _hidden_labels(frame[columns.label]):
            logger.info("%s: labels are hidden (all -1, as in GLUE test); not evaluated.", source_name)
            return None
        label = None if config.label_columns else columns.label
        cols = _label_columns(
            resolve_columns(frame, source_name, columns.text, columns.text_pair, label, need_label=label is not None),
            config,
        )
        out = _standardize(frame, cols, source_name, config, multi_label)
        out["label"] = _encode(out, labels, config, source_name)
        return out

    validation = prepare(validation_split) if validation_split else None
    test = prepare(test_split) if test_split else None
    if validation is None:
        train, validation = split_validation(
            train, config.validation_fraction, seed, len(labels.names) if multi_label else None
        )
        validation_split = None  # resolved config keeps "none": re-running holds out the same fraction again
        logger.info(
            "No validation split: held out a stratified %.0f%% of train (seed %d).",
            100 * config.validation_fraction,
            seed,
        )
    if config.max_train_samples and len(train) > config.max_train_samples:
        train = _sample(train, config.max_train_samples, seed)
    if config.max_eval_samples:
        validation = _sample(validation, config.max_eval_samples, seed)
        test = _sample(test, config.max_eval_samples, seed) if test is not None else None
    resolved = config.model_copy(
        update={
            "text_column": columns.text,
            "text_pair_column": columns.text_pair,
            "label_column": None if config.label_columns else columns.label,
            "label_names": labels.names,
            "multi_label": multi_label,
            "validation_split": validation_split,
            "test_split": test_split if test is not None else None,
        }
    )
    return PreparedData(train=train, validation=validation, test=test, labels=labels, config=resolved)


#: The column that holds each row's label set, built from ``data.label_columns`` before the frame is standardized.
LABEL_SETS_COLUMN = "__label_set__"


def _label_columns(columns: Columns, config: DataConfig) -> Columns:
    """With ``data.label_columns`` the labels come from those 0/1 columns (gathered into one column of sets)."""
    return dataclasses.replace(columns, label=LABEL_SETS_COLUMN) if config.label_columns else columns


def _is_multi_label(config: DataConfig, frame: pd.DataFrame, columns: Columns, source: str) -> bool:
    """``data.multi_label`` when set, else what the data and the other settings say (list-valued labels,
    ``label_columns``, ``label_separator``). A list of labels in a single-label run is an error naming its row."""
    if config.label_columns is not None or config.label_separator is not None:
        return True
    labels = frame[columns.label] if columns.label in frame.columns else pd.Series(dtype=object)
    row = first_list_row(labels)
    if config.multi_label is False and row is not None:
        raise DataError(
            f"{source}: row {row + 1} has a list of labels ({list(labels.iloc[row])!r}), but data.multi_label is "
            "false.",
            "Set data.multi_label=true (--multi-label) for texts with several labels, or give one label per row.",
        )
    return config.multi_label if config.multi_label is not None else row is not None


def _standardize(
    frame: pd.DataFrame, columns: Columns, source: str, config: DataConfig, multi_label: bool
) -> pd.DataFrame:
    if config.label_columns:
        frame = frame.assign(**{LABEL_SETS_COLUMN: label_sets_from_columns(frame, config.label_columns, source)})
    return standardize(frame, columns, source, config.drop_missing_labels, empty_labels_allowed=multi_label)


def _label_sets(frame: pd.DataFrame, config: DataConfig, source: str) -> list[list[object]]:
    if config.label_columns:
        return [list(labels) for labels in frame["label"]]
    return label_sets(frame["label"], config.label_separator, source)


def _encode(frame: pd.DataFrame, labels: LabelSpace, config: DataConfig, source: str) -> list[Any]:
    if labels.multi_label:
        return labels.encode_sets(_label_sets(frame, config, source), source)
    return labels.encode(frame["label"], source)


def load_eval_file(
    source: str,
    config: DataConfig,
    labels: LabelSpace,
    is_pair: bool | None = None,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
) -> pd.DataFrame:
    """Read labelled data for ``evaluate``: a file, a folder's test (else validation) file, or a preset/hub dataset's
    labelled test (else validation) split, with its columns mapped by :func:`new_data_columns`."""
    raw, _ = read_source(source, config.column_names)
    if len(raw) == 1:
        split = next(iter(raw))
    else:
        label_names = [name for name in (label_column, config.label_column) if name]
        split = next(
            (
                s
                for s in ("test", "validation")
                if s in raw
                and not _hidden_labels(
                    next((raw[s][name] for name in label_names if name in raw[s]), pd.Series(dtype=float))
                )
            ),
            "train",
        )
    name = source if len(raw) == 1 else f"{source} [{split}]"
    frame = raw[split]
    pair = bool(config.text_pair_column) if is_pair is None else is_pair
    columns = _label_columns(
        new_data_columns(
            frame,
            name,
            config,
            pair,
            text_column,
            text_pair_column,
            label_column,
            need_label=not config.label_columns,
        ),
        config,
    )
    if not labels.multi_label and columns.label in frame.columns and first_list_row(frame[columns.label]) is not None:
        row = first_list_row(frame[columns.label])
        raise DataError(
            f"{name}: row {(row or 0) + 1} has a list of labels, but the run was trained on single labels.",
            "Evaluate it with a multi-label run (data.multi_label=true), or give one label per row.",
        )
    out = _standardize(frame, columns, name, config, labels.multi_label)
    out["label"] = _encode(out, labels, config, name)
    return out


def new_data_columns(
    frame: pd.DataFrame,
    source: str,
    config: DataConfig,
    is_pair: bool,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    need_label: bool = True,
) -> Columns:
    """The columns of data a trained run has not seen: an explicit name wins; else the run's own column when the data
    has it; else detection as ``train`` does it. A pair model needs a pair column; a single-text model takes none."""

    def pick(explicit: str | None, trained: str | None) -> str | None:
        if explicit:
            return explicit
        return trained if trained and trained in frame.columns else None

    if not is_pair and text_pair_column:
        raise DataError(
            f"{source}: --text-pair-column {text_pair_column} was given, but this model classifies single texts.",
            "Drop --text-pair-column.",
        )
    text = pick(text_column, config.text_column)
    pair = pick(text_pair_column, config.text_pair_column) if is_pair else None
    label = pick(label_column, config.label_column)
    columns = resolve_columns(frame, source, text, pair, label, need_label=need_label)
    if not is_pair:
        return dataclasses.replace(columns, text_pair=None)
    if columns.text_pair is None:
        raise DataError(
            f"{source}: this model classifies sentence pairs, but no second-sentence column was found "
            f"(it was trained with '{config.text_pair_column}'). Columns are: {', '.join(map(str, frame.columns))}.",
            "Pass --text-pair-column to name it.",
        )
    return columns


def read_predict_input(
    path: str | Path,
    config: DataConfig,
    is_pair: bool,
    text_column: str | None = None,
    text_pair_column: str | None = None,
) -> pd.DataFrame:
    """Texts (and pairs) to predict from a CSV/TSV/JSONL/Parquet file, with its columns mapped by
    :func:`new_data_columns`. A label column, if any, is ignored."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"Input file not found: {path}.")
    frame = read_table(path)
    columns = new_data_columns(frame, str(path), config, is_pair, text_column, text_pair_column, need_label=False)
    return standardize(frame, dataclasses.replace(columns, label=None), str(path))


def dataset_preset(dataset: str) -> Preset | None:
    """The preset that ``data.dataset`` names, or None for local paths and hub ids."""
    return None if looks_like_path(dataset) else get_preset(dataset)


def read_source(
    dataset: str, column_names: list[str] | None = None
) -> tuple[dict[str, pd.DataFrame], dict[str, list[str]]]:
    """Raw splits of a preset, local path or hub id, plus any ClassLabel names the source declares.
    ``column_names`` names the columns of local CSV/TSV files without a header row."""
    preset = dataset_preset(dataset)
    source = preset.resolved_source() if preset else dataset
    if looks_like_path(source):
        return read_local(source, column_names), {}
    try:
        return read_hub(source)
    except DataError:
        close = difflib.get_close_matches(dataset.lower(), list(presets()), n=1, cutoff=0.6)
        if preset is None and close:
            raise DataError(
                f"Unknown dataset '{dataset}': not a preset, not a local file, and not loadable from the hub.",
                f"Did you mean the preset '{close[0]}'? (distiltune presets lists them all.)",
            ) from None
        raise


def split_validation(
    frame: pd.DataFrame, fraction: float, seed: int, multi_label_count: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out ``fraction`` of ``frame``, stratified by label when every label has two rows or more. Multi-label
    rows (``multi_label_count`` labels) are stratified by their rarest label, so rare labels land on both sides."""
    key = (
        pd.Series(stratification_key(frame["label"].tolist(), multi_label_count), index=frame.index)
        if multi_label_count is not None
        else frame["label"]
    )
    counts = key.value_counts()
    stratify = key if counts.min() >= 2 and len(frame) * fraction >= len(counts) else None
    if stratify is None:
        logger.warning("Too few rows per class for a stratified validation split; using a random split.")
    train, validation = train_test_split(frame, test_size=fraction, random_state=seed, stratify=stratify)
    if len(train) == 0 or len(validation) == 0:
        raise DataError(
            f"Only {len(frame)} training rows: too few to hold out a validation split.",
            "Provide a validation file or more training data.",
        )
    return train.reset_index(drop=True), validation.reset_index(drop=True)


def _apply_preset(config: DataConfig, preset: Preset | None) -> DataConfig:
    if preset is None:
        return config
    return config.model_copy(
        update={
            "text_column": config.text_column or preset.text_column,
            "text_pair_column": config.text_pair_column or preset.text_pair_column,
            "label_column": config.label_column or preset.label_column,
            "label_names": config.label_names or preset.label_names,
            "multi_label": config.multi_label if config.multi_label is not None else (preset.multi_label or None),
        }
    )


def _find_split(raw: dict[str, pd.DataFrame], kind: str, exclude: str) -> str | None:
    return next((name for name in raw if name != exclude and name.lower() in SPLIT_ALIASES[kind]), None)


def _hidden_labels(labels: pd.Series) -> bool:
    numeric = pd.to_numeric(labels, errors="coerce")
    return bool(len(numeric)) and bool((numeric == -1).all())


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    if len(frame) <= n:
        return frame
    return frame.sample(n=n, random_state=seed).reset_index(drop=True)


__all__ = [
    "DEFAULT_MAX_LENGTH",
    "DataConfig",
    "LabelSpace",
    "PreparedData",
    "dataset_preset",
    "load_data",
    "load_eval_file",
    "new_data_columns",
    "read_predict_input",
    "split_validation",
]
