"""What to predict: texts, one sentence pair, or a file of texts (and pairs), as ``distiltune predict`` takes them.

The one place that picks among the three and says, in one line, what is missing: the CLI passes its arguments
through, and a Python caller gets the same choices and the same errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from distiltune.errors import DataError

if TYPE_CHECKING:
    from distiltune.inference.classifier import Classifier


@dataclass(frozen=True)
class PredictionInputs:
    """Texts to predict, and their second sentences for a model trained on pairs (None: single texts)."""

    texts: list[str]
    pairs: list[str] | None = None


def prediction_inputs(
    classifier: Classifier,
    texts: Sequence[str] | None = None,
    pair: tuple[str, str] | None = None,
    input_file: str | Path | None = None,
    text_column: str | None = None,
    text_pair_column: str | None = None,
) -> PredictionInputs:
    """The inputs for ``classifier`` from one of: ``input_file`` (CSV/TSV/JSONL/Parquet; its columns mapped as the
    run's data was, or by ``text_column``/``text_pair_column``), one ``pair`` (premise, hypothesis), or ``texts``;
    checked first in that order. A pair model needs pairs."""
    if input_file is not None:
        from distiltune.data import read_predict_input

        frame = read_predict_input(
            input_file, classifier.config.data, classifier.is_pair, text_column, text_pair_column
        )
        inputs = PredictionInputs(
            frame["text"].tolist(), frame["text_pair"].tolist() if "text_pair" in frame.columns else None
        )
    elif pair is not None:
        inputs = PredictionInputs([pair[0]], [pair[1]])
    elif texts:
        inputs = PredictionInputs(list(texts))
    else:
        raise DataError("Nothing to predict.", "Pass texts, --pair A B, or --input FILE.")
    if classifier.is_pair and inputs.pairs is None:
        raise DataError("This model was trained on sentence pairs.", "Use --pair A B or an --input file with pairs.")
    return inputs


__all__ = ["PredictionInputs", "prediction_inputs"]
