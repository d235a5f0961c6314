"""The HTTP API's request and response shapes (those of text-embeddings-inference's ``/predict``) and the errors.

A request is ``{"inputs": ..., "truncate": bool, "truncation_direction": "right"|"left", "raw_scores": bool,
"top_k": int}``; ``inputs`` is one string, a list of strings, or a list of ``[text]`` / ``[text, text_pair]``
lists. The answer is a list of ``{"label", "score"}`` per input, highest score first (for a run with a tuned
decision threshold, its predicted label first, then the others by score): a flat list for a single input given as
a string (or, for a pair model, as one ``[text, text_pair]``), a list of such lists otherwise.
Errors are ``{"error": message, "error_type": kind}`` with TEI's status codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, RootModel, StrictBool, StrictInt, StrictStr

#: Status code of each error kind. TEI answers its "validation" errors (too many inputs, too many tokens) with 413
#: and malformed input with 422; 401, 404 and 405 are ours.
STATUS_OF_ERROR = {
    "validation": 413,
    "invalid_input": 422,
    "overloaded": 429,
    "unhealthy": 503,
    "backend": 424,
    "unauthorized": 401,
    "not_found": 404,
    "method_not_allowed": 405,
}

TextOrPair = Annotated[list[StrictStr], Field(min_length=1, max_length=2)]


class PredictRequest(BaseModel):
    """Texts to classify and how."""

    inputs: StrictStr | Annotated[list[StrictStr | TextOrPair], Field(min_length=1)] = Field(
        description="A string, a list of strings, or a list of [text] / [text, text_pair] lists. For a sentence-pair "
        "model a list of exactly two strings is one pair, as in text-embeddings-inference.",
        examples=["What a wonderful film", ["great film", "dull plot"], [["A man runs.", "Someone moves."]]],
    )
    truncate: StrictBool | None = Field(
        None,
        description="Cut inputs longer than the model's max length; false answers 413 for them instead. "
        "Unset: the server's --auto-truncate.",
    )
    truncation_direction: Literal["right", "left", "Right", "Left"] | None = Field(
        None,
        description="Which end of a long input is cut: right keeps its beginning, left its end. Unset: as the run "
        "was trained (its data.long_text: head cuts the right end, tail the left, head_tail the middle, chunks "
        "reads the whole input in windows and ignores this).",
    )
    raw_scores: StrictBool = Field(False, description="Return the model's logits instead of probabilities.")
    top_k: Annotated[StrictInt, Field(ge=1)] | None = Field(
        None, description="How many labels per input (default: all), highest score first."
    )


class Prediction(BaseModel):
    label: str
    score: float
    selected: bool | None = Field(
        None,
        description="Multi-label runs only: whether the label's score passes its decision threshold (a text may have "
        "any number of selected labels, none included).",
    )


class PredictResponse(RootModel[list[Prediction] | list[list[Prediction]]]):
    """One list of predictions per input (a single list for a single string input)."""


class ErrorResponse(BaseModel):
    error: str
    error_type: str


class HealthResponse(BaseModel):
    status: str


class InfoResponse(BaseModel):
    model_id: str
    base_model: str
    method: str
    labels: list[str]
    model_type: dict[str, Any]
    input: Literal["text", "pair"]
    is_pair: bool
    max_input_length: int
    max_length: int
    long_text: str
    """How inputs longer than max_length are read (the run's data.long_text)."""
    temperature: float
    """The run's fitted temperature (1: none)."""
    decision_threshold: float | None
    """The run's tuned decision threshold on its minority label's probability (None: the most probable label); a
    multi-label run's common threshold (0.5) when it tuned none per label."""
    multi_label: bool = False
    """Whether each text gets any number of labels: independent sigmoid scores, each against its own threshold."""
    problem_type: str = "single_label_classification"
    """transformers' name for the kind of task: single_label_classification or multi_label_classification."""
    decision_thresholds: list[float] | None = None
    """A multi-label run's per-label thresholds, in label order (None: 0.5 for every label)."""
    backend: str
    model_dtype: str
    """What the model computes in (TEI's field): float32, bfloat16, float16, or int8 for a quantized ONNX export."""
    version: str
    auto_truncate: bool
    max_client_batch_size: int
    max_input_chars: int
    max_concurrent_requests: int
    max_batch_requests: int
    max_batch_tokens: int
    max_wait_ms: float
    payload_limit: int


class RequestRejected(Exception):
    """A request the server refuses: answered as ``{"error", "error_type"}`` with the kind's status code."""

    def __init__(self, error_type: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status_code = STATUS_OF_ERROR[error_type]
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.message, "error_type": self.error_type}


@dataclass(frozen=True)
class ParsedInputs:
    texts: list[str]
    pairs: list[str] | None
    single: bool
    """The request sent one input without a list around it: answer with a flat list, as TEI does."""


def parse_inputs(inputs: str | list[Any], is_pair: bool) -> ParsedInputs:
    """Texts (and pairs) of a validated request, checked against what the model classifies."""
    if isinstance(inputs, str):
        if is_pair:
            raise RequestRejected(
                "invalid_input",
                "This model classifies sentence pairs: send inputs as [text, text_pair] or a list of them.",
            )
        return ParsedInputs([inputs], None, single=True)
    if is_pair and len(inputs) == 2 and all(isinstance(item, str) for item in inputs):
        return ParsedInputs([inputs[0]], [inputs[1]], single=True)
    texts: list[str] = []
    pairs: list[str] = []
    for index, item in enumerate(inputs):
        parts = [item] if isinstance(item, str) else item
        if is_pair and len(parts) != 2:
            raise RequestRejected(
                "invalid_input",
                f"inputs[{index}] is a single text, but this model classifies sentence pairs: send [text, text_pair].",
            )
        if not is_pair and len(parts) != 1:
            raise RequestRejected(
                "invalid_input",
                f"inputs[{index}] is a pair, but this model classifies single texts: send a string.",
            )
        texts.append(parts[0])
        if is_pair:
            pairs.append(parts[1])
    return ParsedInputs(texts, pairs if is_pair else None, single=False)
