"""Load any supported dataset into clean ``text[, text_pair], label`` splits with a fixed label space.

``load_data`` resolves presets, reads local files or the hub, maps columns, drops unusable rows, builds
the label space from the training split and splits off a stratified validation set when there is none.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import train_test_split

from distiltune.config import DataConfig
from distiltune.data.columns import LabelSpace, build_label_space, resolve_columns, standardize
from distiltune.data.sources import looks_like_path, read_hub, read_local
from distiltune.errors import DataError
from distiltune.presets import Preset, get_preset, presets

logger = logging.getLogger("distiltune")
DEFAULT_MAX_LENGTH = 256
DEFAULT_METRIC = "f1_macro"


@dataclass
class PreparedData:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame | None
    labels: LabelSpace
    config: DataConfig
    """The data config with every automatic choice filled in (columns, splits, max length)."""
    metric: str
    """The preset's metric (or f1_macro)."""

    @property
    def is_pair(self) -> bool:
        return "text_pair" in self.train.columns

    def splits(self) -> dict[str, pd.DataFrame]:
        out = {"train": self.train, "validation": self.validation}
        if self.test is not None:
            out["test"] = self.test
        return out


def load_data(config: DataConfig, seed: int = 42) -> PreparedData:
    """Load, map and split the data; ``config.split_seed`` (when set) replaces ``seed`` for the splits."""
    seed = config.split_seed if config.split_seed is not None else seed
    preset = get_preset(config.dataset) if not looks_like_path(config.dataset) else None
    config = _apply_preset(config, preset)
    raw, declared_names = read_source(config.dataset)
    if config.train_split not in raw:
        raise DataError(
            f"{config.dataset}: no '{config.train_split}' split; splits are {', '.join(raw)}.", "Set data.train_split."
        )
    train_raw = raw[config.train_split]
    columns = resolve_columns(
        train_raw,
        f"{config.dataset} [{config.train_split}]",
        config.text_column,
        config.text_pair_column,
        config.label_column,
    )
    names = config.label_names or declared_names.get(columns.label or "")
    train = standardize(train_raw, columns, f"{config.dataset} [{config.train_split}]", config.drop_missing_labels)
    labels = build_label_space(train["label"], f"{config.dataset} [{config.train_split}]", names)
    train["label"] = labels.encode(train["label"], config.dataset)

    validation_split = config.validation_split or _find_split(raw, "validation", exclude=config.train_split)
    test_split = config.test_split or _find_split(raw, "test", exclude=config.train_split)
    for name, kind in ((validation_split, "validation"), (test_split, "test")):
        if name is not None and name not in raw:
            raise DataError(f"{config.dataset}: no split '{name}' for {kind}; splits are {', '.join(raw)}.")

    def prepare(split: str) -> pd.DataFrame | None:
        frame = raw[split]
        source_name = f"{config.dataset} [{split}]"
        if columns.label in frame.columns and _hidden_labels(frame[columns.label]):
            logger.info("%s: labels are hidden (all -1, as in GLUE test); not evaluated.", source_name)
            return None
        cols = resolve_columns(frame, source_name, columns.text, columns.text_pair, columns.label)
        out = standardize(frame, cols, source_name, config.drop_missing_labels)
        out["label"] = labels.encode(out["label"], source_name)
        return out

    validation = prepare(validation_split) if validation_split else None
    test = prepare(test_split) if test_split else None
    if validation is None:
        train, validation = split_validation(train, config.validation_fraction, seed)
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
    resolved = dataclasses.replace(
        config,
        text_column=columns.text,
        text_pair_column=columns.text_pair,
        label_column=columns.label,
        label_names=labels.names,
        validation_split=validation_split,
        test_split=test_split if test is not None else None,
        max_length=config.max_length or DEFAULT_MAX_LENGTH,
    )
    return PreparedData(
        train=train,
        validation=validation,
        test=test,
        labels=labels,
        config=resolved,
        metric=preset.metric if preset else DEFAULT_METRIC,
    )


def load_eval_file(source: str, config: DataConfig, labels: LabelSpace) -> pd.DataFrame:
    """Read data for ``evaluate``, mapped like the training data: a file, a folder's test (else validation)
    file, or a preset/hub dataset's labelled test (else validation) split."""
    raw, _ = read_source(source)
    if len(raw) == 1:
        split = next(iter(raw))
    else:
        split = next(
            (
                s
                for s in ("test", "validation")
                if s in raw
                and not _hidden_labels(
                    raw[s][config.label_column] if config.label_column in raw[s] else pd.Series(dtype=float)
                )
            ),
            "train",
        )
    name = source if len(raw) == 1 else f"{source} [{split}]"
    frame = raw[split]
    cols = resolve_columns(frame, name, config.text_column, config.text_pair_column, config.label_column)
    out = standardize(frame, cols, name, config.drop_missing_labels)
    out["label"] = labels.encode(out["label"], name)
    return out


def read_source(dataset: str) -> tuple[dict[str, pd.DataFrame], dict[str, list[str]]]:
    """Raw splits of a preset, local path or hub id, plus any ClassLabel names the source declares."""
    preset = get_preset(dataset) if not looks_like_path(dataset) else None
    source = preset.resolved_source() if preset else dataset
    if looks_like_path(source):
        return read_local(source), {}
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


def split_validation(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    counts = frame["label"].value_counts()
    stratify = frame["label"] if counts.min() >= 2 and len(frame) * fraction >= len(counts) else None
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
    return dataclasses.replace(
        config,
        text_column=config.text_column or preset.text_column,
        text_pair_column=config.text_pair_column or preset.text_pair_column,
        label_column=config.label_column or preset.label_column,
        label_names=config.label_names or preset.label_names,
        max_length=config.max_length or preset.max_length,
    )


def _find_split(raw: dict[str, pd.DataFrame], kind: str, exclude: str) -> str | None:
    from distiltune.data.sources import SPLIT_ALIASES

    return next((name for name in raw if name != exclude and name.lower() in SPLIT_ALIASES[kind]), None)


def _hidden_labels(labels: pd.Series) -> bool:
    numeric = pd.to_numeric(labels, errors="coerce")
    return bool(len(numeric)) and bool((numeric == -1).all())


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    if len(frame) <= n:
        return frame
    return frame.sample(n=n, random_state=seed).reset_index(drop=True)


def preset_metric(dataset: str) -> str:
    preset = get_preset(dataset) if not looks_like_path(dataset) else None
    return preset.metric if preset else DEFAULT_METRIC


__all__ = ["LabelSpace", "PreparedData", "load_data", "load_eval_file", "split_validation"]
