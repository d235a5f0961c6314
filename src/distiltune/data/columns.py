"""Map raw columns to ``text[, text_pair], label``, clean rows and build the label space."""

from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass

import pandas as pd

from distiltune.errors import DataError

logger = logging.getLogger("distiltune")

TEXT_CANDIDATES = ("text", "sentence", "sentence1", "premise", "question1", "review", "content", "document")
PAIR_CANDIDATES = {"sentence1": "sentence2", "premise": "hypothesis", "question1": "question2"}
LABEL_CANDIDATES = ("label", "labels", "class", "target", "sentiment", "category", "gold_label")


@dataclass(frozen=True)
class Columns:
    text: str
    label: str | None
    text_pair: str | None = None


def resolve_columns(
    frame: pd.DataFrame, source: str, text: str | None, pair: str | None, label: str | None, need_label: bool = True
) -> Columns:
    """Pick the text/pair/label columns (explicit names win) and fail with the list of columns if absent."""
    available = list(frame.columns)

    def require(kind: str, name: str) -> str:
        if name not in available:
            raise DataError(
                f"{source}: no {kind} column '{name}'. Columns are: {', '.join(available)}.",
                f"Pass --{kind.replace(' ', '-')}-column with one of them.",
            )
        return name

    def detect(kind: str, candidates: tuple[str, ...]) -> str:
        found = next((c for c in candidates if c in available), None)
        if found is None:
            raise DataError(
                f"{source}: cannot find a {kind} column. Columns are: {', '.join(available)}.",
                f"Pass --{kind.replace(' ', '-')}-column to name it.",
            )
        return found

    text_col = require("text", text) if text else detect("text", TEXT_CANDIDATES)
    if pair:
        pair_col: str | None = require("text pair", pair)
    else:
        guess = PAIR_CANDIDATES.get(text_col)
        pair_col = guess if guess in available else None
    if label:
        label_col: str | None = require("label", label) if need_label or label in available else None
    elif need_label:
        label_col = detect("label", LABEL_CANDIDATES)
    else:
        label_col = next((c for c in LABEL_CANDIDATES if c in available), None)
    return Columns(text=text_col, label=label_col, text_pair=pair_col)


def standardize(
    frame: pd.DataFrame,
    columns: Columns,
    source: str,
    drop_missing_labels: bool = False,
    empty_labels_allowed: bool = False,
) -> pd.DataFrame:
    """Rename to text/text_pair/label and drop rows with empty text (counted warning). A missing label is an
    error that names the rows, unless ``drop_missing_labels`` (then those rows are dropped too), or
    ``empty_labels_allowed`` (multi-label data: an empty cell is a row with no label, and stays)."""
    out = pd.DataFrame({"text": frame[columns.text]})
    if columns.text_pair:
        out["text_pair"] = frame[columns.text_pair]
    if columns.label:
        out["label"] = frame[columns.label]
    out = out.reset_index(drop=True)
    for column in ("text", "text_pair"):
        if column in out:
            values = out[column]
            non_string = values.map(lambda v: v is not None and not isinstance(v, str) and not pd.isna(v))
            if non_string.any():
                row = int(non_string.idxmax())
                raise DataError(
                    f"{source}: column '{getattr(columns, column)}' must hold text, but row {row + 1} holds "
                    f"{type(values[row]).__name__} {values[row]!r}.",
                    "Point the text column at a string column.",
                )
    empty_text = out["text"].map(_is_blank)
    if "text_pair" in out:
        empty_text |= out["text_pair"].map(_is_blank)
    missing_label = (
        out["label"].map(_is_missing)
        if "label" in out and not empty_labels_allowed
        else pd.Series(False, index=out.index)
    )
    if missing_label.any() and not drop_missing_labels:
        rows = [i + 1 for i in missing_label[missing_label].index[:5]]
        raise DataError(
            f"{source}: {int(missing_label.sum())} row(s) have an empty or NaN label in column '{columns.label}' "
            f"(data rows {', '.join(map(str, rows))}{', ...' if missing_label.sum() > 5 else ''}).",
            "Fill in or delete those rows, or set data.drop_missing_labels=true to skip them.",
        )
    dropped = empty_text | missing_label
    if dropped.all():
        raise DataError(
            f"{source}: every row has an empty text or a missing label ({len(out)} rows).",
            "Check the column mapping (--text-column/--label-column) and the file contents.",
        )
    if dropped.any():
        rows = [i + 1 for i in dropped[dropped].index[:5]]
        logger.warning(
            "%s: dropped %d of %d rows with empty text (%d) or missing label (%d); first data rows: %s",
            source,
            int(dropped.sum()),
            len(out),
            int(empty_text.sum()),
            int(missing_label.sum()),
            rows,
        )
        out = out[~dropped].reset_index(drop=True)
    return out


@dataclass(frozen=True)
class LabelSpace:
    names: list[str]
    """Label names in id order: id ``i`` is ``names[i]``."""
    values: list[object]
    """The raw label value for each id (ints stay ints, strings stay strings)."""
    multi_label: bool = False
    """Each text carries a set of labels (possibly empty) instead of exactly one."""

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def encode(self, labels: pd.Series, source: str) -> list[int]:
        lookup = {_key(v): i for i, v in enumerate(self.values)}
        lookup.update({name: i for i, name in enumerate(self.names)})
        unknown = sorted({str(v) for v in labels if _key(v) not in lookup})
        if unknown:
            raise DataError(
                f"{source}: labels not seen in training: {', '.join(unknown[:10])}"
                f"{' ...' if len(unknown) > 10 else ''}. Training labels are: {', '.join(self.names)}.",
                "Fix the labels or the label column, or retrain with data that includes them.",
            )
        return [lookup[_key(v)] for v in labels]

    def encode_sets(self, sets: list[list[object]], source: str) -> list[list[int]]:
        """Multi-label rows (lists of raw labels: names or ids) as sorted lists of label ids; a label the training
        data did not have is an error naming the row and the value."""
        lookup = {_key(v): i for i, v in enumerate(self.values)}
        lookup.update({name: i for i, name in enumerate(self.names)})
        encoded = []
        for row, labels in enumerate(sets):
            ids = set()
            for value in labels:
                key = _key(value)
                if key not in lookup:
                    raise DataError(
                        f"{source}: row {row + 1}: label {value!r} is not one of the training labels "
                        f"({', '.join(self.names[:12])}{' ...' if len(self.names) > 12 else ''}).",
                        "Fix the label, or retrain with data that includes it.",
                    )
                ids.add(lookup[key])
            encoded.append(sorted(ids))
        return encoded


def build_label_space(labels: pd.Series, source: str, names: list[str] | None) -> LabelSpace:
    """Label ids follow the declared ``names`` for integer labels 0..n-1, else the sorted training values."""
    kinds = _label_kinds(list(labels), source)
    if kinds == {"number"}:
        values = sorted({int(float(v)) for v in labels})
        if any(float(v) != int(float(v)) for v in labels):
            raise DataError(f"{source}: numeric labels must be integers.", "Use class ids or class names.")
        if names:
            if values[0] < 0 or values[-1] >= len(names):
                raise DataError(
                    f"{source}: integer labels {values} do not fit the {len(names)} label names {names}.",
                    "Fix data.label_names or the labels.",
                )
            space = LabelSpace(names=list(names), values=list(range(len(names))))
        else:
            space = LabelSpace(names=[str(v) for v in values], values=list(values))
    else:
        values = sorted({str(v).strip() for v in labels})
        space = LabelSpace(names=values, values=values)
    present = {_key(v) for v in labels}
    if len(present) < 2:
        raise DataError(
            f"{source}: the training data has a single class ({next(iter(present))}).",
            "Classification needs at least two classes; check the label column.",
        )
    return space


def build_multi_label_space(sets: list[list[object]], source: str, names: list[str] | None) -> LabelSpace:
    """The label space of multi-label training rows: integer ids follow the declared ``names`` (from
    ``data.label_names``, a names file or the hub; an id outside them is an error naming its row), names given
    with name labels fix the order (``data.label_columns``: the columns' order), else the sorted training values."""
    values = [value for labels in sets for value in labels]
    if not values:
        raise DataError(f"{source}: no row has a label.", "Check the label column (or data.label_columns).")
    kinds = _label_kinds(values, source)
    if kinds == {"number"}:
        for row, labels in enumerate(sets):
            for value in labels:
                number = float(value)  # type: ignore[arg-type]
                if not number.is_integer() or (names and not 0 <= number < len(names)):
                    allowed = f"0..{len(names) - 1} (the {len(names)} label names)" if names else "integers"
                    raise DataError(
                        f"{source}: row {row + 1}: label id {value!r} is not a valid id; ids are {allowed}.",
                        "Fix the label, or data.label_names / data.label_names_file.",
                    )
        if names:
            space = LabelSpace(names=list(names), values=list(range(len(names))), multi_label=True)
        else:
            ids = sorted({int(float(v)) for v in values})  # type: ignore[arg-type]
            space = LabelSpace(names=[str(v) for v in ids], values=list(ids), multi_label=True)
    elif names:
        known = set(names)
        for row, labels in enumerate(sets):
            unknown = next((v for v in labels if str(v).strip() not in known), None)
            if unknown is not None:
                raise DataError(
                    f"{source}: row {row + 1}: label {unknown!r} is not one of the label names "
                    f"({', '.join(names[:12])}{' ...' if len(names) > 12 else ''}).",
                    "Fix the label or data.label_names.",
                )
        space = LabelSpace(names=list(names), values=list(names), multi_label=True)
    else:
        found = sorted({str(v).strip() for v in values})
        space = LabelSpace(names=found, values=list(found), multi_label=True)
    if len(space.names) < 2:
        raise DataError(
            f"{source}: the training data has a single label ({space.names[0]}).",
            "Classification needs at least two labels; check the label column.",
        )
    return space


def _label_kinds(values: list[object], source: str) -> set[str]:
    """``{"number"}`` or ``{"string"}``: the one kind the labels are; a mix is an error naming one of each."""
    kinds = {"number" if _is_number(v) else "string" for v in values}
    if len(kinds) > 1:
        example_number = next(v for v in values if _is_number(v))
        example_string = next(v for v in values if not _is_number(v))
        raise DataError(
            f"{source}: labels mix numbers and strings (e.g. {example_number!r} and {example_string!r}).",
            "Use one kind of label throughout the column.",
        )
    return kinds


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Number):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _key(value: object) -> object:
    if _is_number(value):
        number = float(value)  # type: ignore[arg-type]
        return int(number) if number.is_integer() else number
    return str(value).strip()


def _is_blank(value: object) -> bool:
    return (
        value is None
        or (isinstance(value, float) and pd.isna(value))
        or (isinstance(value, str) and not value.strip())
    )


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and pd.isna(value):
        return True
    return isinstance(value, str) and value.strip().lower() in ("", "nan", "none", "null")
