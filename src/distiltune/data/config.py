"""The ``data`` section of a run's config: where the data comes from and how it is mapped and split."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from distiltune.data.long_text import LongTextOptions
from distiltune.errors import ConfigError
from distiltune.schema import CommaList, ConfigModel


class DataConfig(ConfigModel):
    section: ClassVar[str] = "data"

    dataset: str = "imdb"
    """A preset (imdb, imdb-truncated, ag_news, rte, sst2, imdb-demo), a hub id ``name[:config]``, a local
    CSV/TSV/JSONL/Parquet file, or a folder with train/validation/test files."""
    text_column: str | None = None
    """Column holding the text (or the first sentence of a pair). Auto-detected when unset."""
    text_pair_column: str | None = None
    """Column holding the second sentence for pair tasks (NLI); unset for single-text tasks."""
    label_column: str | None = None
    """Column holding the label (strings or integers). Auto-detected when unset."""
    label_names: CommaList | None = None
    """Names for integer labels 0..n-1 (taken from the dataset's features or the preset when unset)."""
    train_split: str = "train"
    """Name of the training split."""
    validation_split: str | None = None
    """Name of the validation split; when the data has none, ``validation_fraction`` of train is split off."""
    test_split: str | None = None
    """Name of the test split (``test`` when present and labelled)."""
    validation_fraction: float = Field(0.1, gt=0, lt=1)
    """Stratified fraction of train held out for validation when there is no validation split."""
    split_seed: int | None = None
    """Seed for the held-out validation split and row sampling; unset uses ``train.seed``. ``compare`` fixes it so
    every method and seed sees the same splits."""
    max_length: int | None = Field(None, ge=8)
    """Maximum tokens per example (longer ones are truncated); preset default, else 256."""
    max_train_samples: int | None = Field(None, ge=1)
    """Use only the first N training rows (after a seeded shuffle); handy for quick runs."""
    max_eval_samples: int | None = Field(None, ge=1)
    """Use only the first N validation/test rows (after a seeded shuffle)."""
    drop_missing_labels: bool = False
    """Skip rows whose label cell is empty or NaN (with a counted warning) instead of stopping with an error."""
    long_text: Literal["head", "tail", "head_tail", "chunks"] | None = None
    """How a text longer than max_length is read: head (its start), tail (its end), head_tail (head_tokens from the
    start, the rest from the end), chunks (all of it in overlapping windows: training uses every window, prediction
    aggregates the windows' logits). Unset: the preset's, else head."""
    head_tokens: int | None = None
    """head_tail: content tokens kept from the start (the end fills the rest); unset: a quarter of the window."""
    stride: int | None = None
    """chunks: tokens consecutive windows share; unset: a quarter of the window."""
    max_windows: int | None = None
    """chunks: most windows per text (evenly spread over a longer text, first and last kept); unset: 8."""
    window_aggregation: Literal["mean", "max"] | None = None
    """chunks: how a text's window logits become its prediction: mean, or each label's max; unset: mean."""
    label_names_file: str | None = None
    """A text file with one label name per line, naming integer labels 0..n-1 (a relative path is read as given,
    else inside the dataset's folder). Ignored when ``label_names`` is set."""
    multi_label: bool | None = None
    """Each text carries a set of labels, possibly empty (sigmoid scores per label, a threshold per label). Unset:
    detected (list-valued labels, ``label_columns`` or ``label_separator`` make a run multi-label)."""
    label_separator: str | None = None
    """Multi-label cells written as one delimited string (``4,27``): the separator; unset: ``,``."""
    label_columns: CommaList | None = None
    """Multi-label data with one 0/1 column per label: those columns, whose names are the label names."""
    column_names: CommaList | None = None
    """Column names for CSV/TSV files without a header row (their first line is data), e.g. ``[text, labels, id]``
    for GoEmotions' TSVs; unset: the first line is the header."""

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        """What types and bounds alone cannot check; a ConfigError names the key."""
        if self.text_pair_column is not None and self.text_pair_column == self.text_column:
            raise ConfigError("data.text_pair_column must differ from data.text_column.")
        wants_multi_label = self.label_columns is not None or self.label_separator is not None
        if self.multi_label is False and wants_multi_label:
            key = "data.label_columns" if self.label_columns is not None else "data.label_separator"
            raise ConfigError(f"{key} describes multi-label data, but data.multi_label is false.", "Drop one of them.")
        if self.label_columns is not None:
            if len(self.label_columns) < 2 or len(set(self.label_columns)) != len(self.label_columns):
                raise ConfigError(
                    f"data.label_columns needs two or more distinct columns, got {self.label_columns}.",
                    "E.g. --label-columns toxic,insult,threat.",
                )
            if self.label_column is not None:
                raise ConfigError(
                    "data.label_column and data.label_columns both name the labels.", "Give one of them."
                )
        if self.label_separator is not None and not self.label_separator:
            raise ConfigError("data.label_separator is empty.", "Use e.g. ',' or '|', or leave it unset.")
        if self.column_names is not None and len(set(self.column_names)) != len(self.column_names):
            raise ConfigError(f"data.column_names repeats a name: {self.column_names}.")
        self.long_text_options().validate(self.max_length)
        return self

    def long_text_options(self) -> LongTextOptions:
        """How long texts are read (``data.long_text`` and its settings; unset reads as head)."""
        return LongTextOptions.from_data_config(self)


__all__ = ["DataConfig"]
