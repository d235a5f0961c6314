"""How a text longer than ``max_length`` is read: its start, its end, both ends, or all of it in windows.

Modes (config key ``data.long_text``); C is the content budget of one window, ``max_length`` minus the special
tokens the tokenizer adds ([CLS]/[SEP], <s>/</s>, ...):

``head``
    The first tokens: exactly ``tokenizer(texts, pairs, truncation=True, max_length=max_length)``, as before this
    setting existed.
``tail``
    The last tokens.
``head_tail``
    The first ``head_tokens`` and the last ``C - head_tokens`` content tokens (``data.head_tokens``; unset: C // 4).
    Sun et al. 2019 (How to Fine-Tune BERT for Text Classification?) found head 128 + tail 382 best on IMDb at 512.
``chunks``
    The whole text in windows of ``max_length`` tokens. Window k holds content tokens [k * (C - stride),
    k * (C - stride) + C): consecutive windows share ``stride`` tokens (``data.stride``; unset: C // 4), as with
    transformers' ``return_overflowing_tokens=True, stride=...`` on a fast tokenizer. A document that needs more than
    ``max_windows`` windows (``data.max_windows``; unset: 8) keeps that many, evenly spread over the text, first and
    last included. Training uses each window as a row with its document's label; prediction averages the windows'
    logits (``data.window_aggregation: mean``) or takes each label's largest window logit (``max``):
    :func:`aggregate_windows`.

Pairs (``text``, ``text_pair``):

* ``head``, ``tail`` and ``head_tail`` share the budget C between the two texts as transformers' ``longest_first``
  truncation does on fast tokenizers (the tokenizers library's rule: the longer text is cut first; when both must be
  cut each keeps C // 2, the longer one the odd token, the second text on a tie). Each text then keeps its own
  budget's head (``head``), tail (``tail``), or both (``head_tail``: a text with budget b keeps its first
  ``b * head_tokens // C`` and its last ``b - b * head_tokens // C`` tokens, the single-text split scaled to its
  share). ``tail`` therefore equals the tokenizer with ``truncation_side="left"``.
* ``chunks`` slides over the longer text of each pair (the second on a tie) and repeats the other text, cut to its
  first C // 2 tokens, in every window. The windows hold what is left: C - (the other text's kept tokens).

Except for ``head`` (the tokenizer's own truncation), every mode works on token ids: each text is tokenized once
without special tokens, the kept ids are chosen, and the special tokens are put back where the tokenizer puts them
(:class:`SpecialTokens`, learnt by probing the tokenizer). So fast and slow tokenizers give the same windows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from distiltune.errors import ConfigError, ModelError

MODES = ("head", "tail", "head_tail", "chunks")
AGGREGATIONS = ("mean", "max")
DEFAULT_MAX_WINDOWS = 8
#: The dataset summary hints at ``data.long_text`` when more than this fraction of training texts is truncated.
TRUNCATION_HINT_FRACTION = 0.2
#: Columns a window carries, when the tokenizer returns them (the model's inputs).
WINDOW_COLUMNS = ("input_ids", "token_type_ids", "attention_mask")

Span = tuple[int, int]
#: One window: the spans of the first text's content ids it keeps, and those of the second text (empty: no pair).
Window = tuple[tuple[Span, ...], tuple[Span, ...]]


@dataclass(frozen=True)
class LongTextOptions:
    """The long-text settings of a run: ``data.long_text`` (``mode``), ``data.head_tokens``, ``data.stride``,
    ``data.max_windows`` and ``data.window_aggregation``. Unset values take their defaults; a value set for a mode
    that does not read it is a ConfigError (:meth:`validate`), so a setting never goes silently unused."""

    mode: str = "head"
    head_tokens: int | None = None
    stride: int | None = None
    max_windows: int | None = None
    window_aggregation: str | None = None

    @classmethod
    def from_data_config(cls, data: Any) -> LongTextOptions:
        """The options of a ``DataConfig`` (or any object with its attribute names); absent attributes (a config
        written before these settings existed) read as unset, i.e. ``head``."""
        return cls(
            mode=getattr(data, "long_text", None) or "head",
            head_tokens=getattr(data, "head_tokens", None),
            stride=getattr(data, "stride", None),
            max_windows=getattr(data, "max_windows", None),
            window_aggregation=getattr(data, "window_aggregation", None),
        )

    @property
    def aggregation(self) -> str:
        return self.window_aggregation or "mean"

    @property
    def window_cap(self) -> int:
        return self.max_windows if self.max_windows is not None else DEFAULT_MAX_WINDOWS

    def head_share(self, capacity: int) -> int:
        """Content tokens a single ``head_tail`` text keeps from its start."""
        return self.head_tokens if self.head_tokens is not None else capacity // 4

    def overlap(self, capacity: int) -> int:
        """Content tokens consecutive ``chunks`` windows share."""
        return self.stride if self.stride is not None else capacity // 4

    def cache_token(self) -> str:
        """What the tokenized rows depend on, for the tokenization cache key ('' for ``head``: its rows are the
        ones cached before this setting existed). The aggregation is left out: it acts on logits, not tokens."""
        if self.mode == "head":
            return ""
        settings = (("long_text", self.mode), ("head_tokens", self.head_tokens), ("stride", self.stride))
        return ",".join(f"{key}={value}" for key, value in (*settings, ("max_windows", self.max_windows)))

    def validate(self, max_length: int | None = None) -> LongTextOptions:
        """Check what can be checked without a tokenizer (``max_length`` when known); ConfigError naming the key.

        :func:`encode_documents` checks the rest once the special tokens, hence the window's content budget, are
        known."""
        if self.mode not in MODES:
            raise ConfigError(f"data.long_text must be one of {', '.join(MODES)}; got '{self.mode}'.")
        if self.window_aggregation is not None and self.window_aggregation not in AGGREGATIONS:
            raise ConfigError(
                f"data.window_aggregation must be one of {', '.join(AGGREGATIONS)}; got '{self.window_aggregation}'."
            )
        readers = {
            "head_tokens": "head_tail",
            "stride": "chunks",
            "max_windows": "chunks",
            "window_aggregation": "chunks",
        }
        for key, reader in readers.items():
            if getattr(self, key) is not None and self.mode != reader:
                raise ConfigError(
                    f"data.{key} is only read with data.long_text={reader} (this run uses {self.mode}).",
                    f"Drop data.{key}, or set data.long_text={reader}.",
                )
        for key, value, least in (("head_tokens", self.head_tokens, 0), ("stride", self.stride, 0)):
            if value is not None and value < least:
                raise ConfigError(f"data.{key} must be >= {least}, got {value}.")
        if self.max_windows is not None and self.max_windows < 1:
            raise ConfigError(f"data.max_windows must be >= 1, got {self.max_windows}.")
        if max_length is not None:
            for key, value in (("head_tokens", self.head_tokens), ("stride", self.stride)):
                if value is not None and value >= max_length:
                    raise ConfigError(
                        f"data.{key} ({value}) must be smaller than data.max_length ({max_length}).",
                        f"Lower data.{key} or raise data.max_length.",
                    )
        return self

    def check_capacity(self, capacity: int, max_length: int, specials: int, pair: bool) -> None:
        """The checks that need the window's content budget (``max_length`` - ``specials`` special tokens)."""
        self.validate(max_length)
        if capacity < 1:
            raise ConfigError(
                f"data.max_length {max_length} leaves no room for text next to the tokenizer's {specials} special "
                "tokens.",
                "Raise data.max_length.",
            )
        where = f"max_length {max_length} less the tokenizer's {specials} special tokens"
        if self.mode == "head_tail" and self.head_share(capacity) > capacity:
            raise ConfigError(
                f"data.head_tokens ({self.head_tokens}) exceeds the {capacity} tokens a text keeps ({where}).",
                f"Set data.head_tokens to {capacity} or less.",
            )
        if self.mode == "chunks":
            # With a pair, the repeated text takes up to half of each window.
            window = capacity - capacity // 2 if pair else capacity
            if self.overlap(capacity) >= window:
                whose = "the slid text of a pair gets" if pair else "a window holds"
                raise ConfigError(
                    f"data.stride ({self.overlap(capacity)}) must be smaller than the {window} tokens {whose} "
                    f"({where}).",
                    f"Set data.stride to {window - 1} or less, or raise data.max_length.",
                )


def longest_first_budgets(first_length: int, second_length: int | None, capacity: int) -> tuple[int, int]:
    """Content tokens each text keeps when the pair must fit ``capacity``: the tokenizers library's
    ``longest_first`` rule (what transformers' fast tokenizers apply). Without a pair the second budget is 0."""
    if second_length is None:
        return min(first_length, capacity), 0
    if first_length + second_length <= capacity:
        return first_length, second_length
    swap = first_length > second_length
    shorter = min(first_length, second_length)
    keep_shorter = shorter
    keep_longer = shorter if shorter > capacity else max(shorter, capacity - shorter)
    if keep_shorter + keep_longer > capacity:
        keep_shorter = capacity // 2
        keep_longer = keep_shorter + capacity % 2
    first, second = (keep_longer, keep_shorter) if swap else (keep_shorter, keep_longer)
    return min(first_length, first), min(second_length, second)


def plan_windows(
    first_length: int, second_length: int | None, options: LongTextOptions, capacity: int
) -> list[Window]:
    """The windows of one document as spans of its texts' content ids (no special tokens), in text order."""
    if options.mode == "chunks":
        return _chunk_windows(first_length, second_length, options, capacity)
    first_budget, second_budget = longest_first_budgets(first_length, second_length, capacity)
    first = _kept_spans(first_length, first_budget, options, capacity)
    second = _kept_spans(second_length, second_budget, options, capacity) if second_length is not None else ()
    return [(first, second)]


def _kept_spans(length: int, budget: int, options: LongTextOptions, capacity: int) -> tuple[Span, ...]:
    if length <= budget:
        return _nonempty(((0, length),))
    if options.mode == "head":
        return _nonempty(((0, budget),))
    if options.mode == "tail":
        return _nonempty(((length - budget, length),))
    head = budget * options.head_share(capacity) // capacity
    return _nonempty(((0, head), (length - (budget - head), length)))


def _chunk_windows(
    first_length: int, second_length: int | None, options: LongTextOptions, capacity: int
) -> list[Window]:
    if second_length is None:
        return [(spans, ()) for spans in _slide(first_length, capacity, options.overlap(capacity), options.window_cap)]
    if first_length + second_length <= capacity:
        return [(_nonempty(((0, first_length),)), _nonempty(((0, second_length),)))]
    slide_second = second_length >= first_length
    other_length = first_length if slide_second else second_length
    other = _nonempty(((0, min(other_length, capacity // 2)),))
    window = capacity - min(other_length, capacity // 2)
    slid_length = second_length if slide_second else first_length
    slid = _slide(slid_length, window, options.overlap(capacity), options.window_cap)
    return [(other, spans) if slide_second else (spans, other) for spans in slid]


def _slide(length: int, window: int, overlap: int, max_windows: int) -> list[tuple[Span, ...]]:
    """Windows of ``window`` tokens over ``length`` tokens, consecutive ones sharing ``overlap``; at most
    ``max_windows`` of them, evenly spread (first and last kept) when more would be needed."""
    step = window - overlap
    count = 1 if length <= window else 1 + math.ceil((length - window) / step)
    chosen: Sequence[int] = range(count)
    if count > max_windows:
        # Spacing >= 1 between the ideal positions, so rounding half up gives distinct windows.
        chosen = [math.floor(x + 0.5) for x in np.linspace(0, count - 1, max_windows)]
    return [_nonempty(((k * step, min(k * step + window, length)),)) for k in chosen]


def _nonempty(spans: tuple[Span, ...]) -> tuple[Span, ...]:
    return tuple(span for span in spans if span[1] > span[0])


def covered_tokens(windows: Sequence[Window]) -> tuple[int, int]:
    """How many distinct content tokens of the first and the second text the windows read."""
    return _union_size(span for first, _ in windows for span in first), _union_size(
        span for _, second in windows for span in second
    )


def _union_size(spans: Any) -> int:
    total, reach = 0, 0
    for start, end in sorted(spans):
        start = max(start, reach)
        if end > start:
            total += end - start
            reach = end
    return total


# --- special tokens --------------------------------------------------------------------------------------------

#: Probe inputs: two pairs with different lengths, so a layout that depended on the content would show.
_PROBES = (("a", "b"), ("a b c", "d e"))


@dataclass(frozen=True)
class SpecialTokens:
    """Where a tokenizer puts its special tokens: ``segments`` are the fixed pieces before the first text, between
    the texts and after the second (a single text: before and after), each as ``{column: values}``; the texts' own
    tokens get ``content_type_ids`` (first, second) as token type and 1 as attention mask."""

    columns: tuple[str, ...]
    segments: tuple[dict[str, tuple[int, ...]], ...]
    content_type_ids: tuple[int, ...]

    @property
    def count(self) -> int:
        return sum(len(segment["input_ids"]) for segment in self.segments)

    @property
    def pair(self) -> bool:
        return len(self.segments) == 3

    def build(self, first: Sequence[int], second: Sequence[int] | None = None) -> dict[str, list[int]]:
        """The model inputs of one window from the content ids of its text(s)."""
        if (second is not None) != self.pair:
            raise ValueError("a pair layout needs two texts and a single-text layout one")
        texts = [first] if second is None else [first, second]
        row: dict[str, list[int]] = {column: [] for column in self.columns}
        for index, segment in enumerate(self.segments):
            for column in self.columns:
                row[column].extend(segment[column])
            if index < len(texts):
                content = texts[index]
                row["input_ids"].extend(content)
                if "token_type_ids" in row:
                    row["token_type_ids"].extend([self.content_type_ids[index]] * len(content))
                if "attention_mask" in row:
                    row["attention_mask"].extend([1] * len(content))
        return row


def special_tokens(tokenizer: Any, pair: bool) -> SpecialTokens:
    """The tokenizer's special-token layout, learnt from what it returns for two probe inputs; a ModelError when it
    cannot be described as fixed tokens around the texts."""
    first_probe, second_probe = _PROBES
    layout = _layout_from_probe(tokenizer, *(first_probe if pair else first_probe[:1]))
    check_first, check_second = second_probe
    expected = _model_inputs(tokenizer(check_first, check_second if pair else None), layout.columns)
    built = layout.build(
        _content_ids(tokenizer, [check_first])[0], _content_ids(tokenizer, [check_second])[0] if pair else None
    )
    if built != expected:
        raise _unsupported(tokenizer)
    return layout


def _layout_from_probe(tokenizer: Any, first: str, second: str | None = None) -> SpecialTokens:
    encoded = _model_inputs(tokenizer(first, second), None)
    ids = encoded["input_ids"]
    contents = [_content_ids(tokenizer, [text])[0] for text in (first, second) if text is not None]
    if not all(contents):
        raise _unsupported(tokenizer)
    starts = _find_in_order(ids, contents)
    if starts is None:
        raise _unsupported(tokenizer)
    bounds = [0]
    for start, content in zip(starts, contents, strict=True):
        bounds += [start, start + len(content)]
    bounds.append(len(ids))
    columns = tuple(encoded)
    segments = tuple(
        {column: tuple(encoded[column][bounds[i] : bounds[i + 1]]) for column in columns}
        for i in range(0, len(bounds), 2)
    )
    types = encoded.get("token_type_ids")
    content_types = []
    for start, content in zip(starts, contents, strict=True):
        values = set(types[start : start + len(content)]) if types is not None else {0}
        if len(values) != 1:
            raise _unsupported(tokenizer)
        content_types.append(values.pop())
    if "attention_mask" in encoded and set(encoded["attention_mask"]) != {1}:
        raise _unsupported(tokenizer)
    return SpecialTokens(columns=columns, segments=segments, content_type_ids=tuple(content_types))


def _find_in_order(ids: list[int], contents: list[list[int]]) -> list[int] | None:
    """Start positions of each content run in ``ids``, in order and not overlapping (first match)."""

    def search(position: int, remaining: list[list[int]]) -> list[int] | None:
        if not remaining:
            return []
        head = remaining[0]
        for start in range(position, len(ids) - len(head) + 1):
            if ids[start : start + len(head)] == head:
                rest = search(start + len(head), remaining[1:])
                if rest is not None:
                    return [start, *rest]
        return None

    return search(0, contents)


def _model_inputs(encoded: Any, columns: tuple[str, ...] | None) -> dict[str, list[int]]:
    wanted = columns if columns is not None else tuple(key for key in encoded if key in WINDOW_COLUMNS)
    return {key: list(encoded[key]) for key in wanted}


def _content_ids(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Each text's token ids without special tokens and without truncation."""
    if not texts:
        return []
    encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False, padding=False, verbose=False)
    return [list(ids) for ids in encoded["input_ids"]]


def _unsupported(tokenizer: Any) -> ModelError:
    return ModelError(
        f"{type(tokenizer).__name__} places its special tokens in a way distiltune cannot rebuild around a part of "
        "a text.",
        "Use data.long_text=head with this tokenizer.",
    )


def check_window_settings(tokenizer: Any, max_length: int, options: LongTextOptions, pair: bool) -> None:
    """The one-line ConfigError (or ModelError) :func:`encode_documents` would raise for these settings with this
    tokenizer, raised without any text: a training run calls it before the model loads."""
    options.validate(max_length)
    if options.mode == "head":
        return
    layout = special_tokens(tokenizer, pair)
    options.check_capacity(max_length - layout.count, max_length, layout.count, pair)


# --- documents into windows ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentWindows:
    """Tokenized windows of a batch of documents: row i of each column (``input_ids``, and ``token_type_ids`` and
    ``attention_mask`` when the tokenizer gives them) is window i, ``document_index[i]`` the document it belongs to.
    Windows come in document order; every document has at least one."""

    columns: dict[str, list[list[int]]]
    document_index: np.ndarray
    num_documents: int

    def __len__(self) -> int:
        return len(self.document_index)

    @property
    def lengths(self) -> np.ndarray:
        return np.asarray([len(ids) for ids in self.columns["input_ids"]], dtype=np.int64)

    @property
    def one_per_document(self) -> bool:
        return len(self.document_index) == self.num_documents


def encode_documents(
    tokenizer: Any,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    *,
    max_length: int,
    options: LongTextOptions | None = None,
) -> DocumentWindows:
    """The windows of every document under ``options`` (default: ``head``), unpadded."""
    options = options or LongTextOptions()
    texts = list(texts)
    pairs = list(pairs) if pairs is not None else None
    if pairs is not None and len(pairs) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(pairs)} pairs")
    options.validate(max_length)
    if options.mode == "head":
        # Exactly the call distiltune always made, so head runs tokenize as before (and hit the same cache).
        encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=False)
        return DocumentWindows(
            {key: list(values) for key, values in encoded.items()}, np.arange(len(texts)), len(texts)
        )
    layout = special_tokens(tokenizer, pair=pairs is not None)
    capacity = max_length - layout.count
    options.check_capacity(capacity, max_length, layout.count, pairs is not None)
    first_ids = _content_ids(tokenizer, texts)
    second_ids = _content_ids(tokenizer, pairs) if pairs is not None else None
    columns: dict[str, list[list[int]]] = {column: [] for column in layout.columns}
    document_index: list[int] = []
    for document, first in enumerate(first_ids):
        second = second_ids[document] if second_ids is not None else None
        for first_spans, second_spans in plan_windows(
            len(first), len(second) if second is not None else None, options, capacity
        ):
            row = layout.build(_take(first, first_spans), _take(second, second_spans) if second is not None else None)
            for column, values in row.items():
                columns[column].append(values)
            document_index.append(document)
    return DocumentWindows(columns, np.asarray(document_index, dtype=np.int64), len(texts))


def _take(ids: list[int], spans: tuple[Span, ...]) -> list[int]:
    return [token for start, end in spans for token in ids[start:end]]


# --- windows back into documents --------------------------------------------------------------------------------


def aggregate_windows(
    logits: np.ndarray, document_index: np.ndarray, how: str = "mean", num_documents: int | None = None
) -> np.ndarray:
    """Per-document logits, in document order, from per-window ``logits`` (same dtype).

    ``mean`` averages a document's window logits; ``max`` takes, for each label, its largest logit over the
    document's windows (the label any window argues for most strongly). A document with one window keeps its
    logits unchanged, so this is the identity when no document has more than one."""
    logits = np.asarray(logits)
    document_index = np.asarray(document_index, dtype=np.int64)
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown window aggregation '{how}'; choose one of {', '.join(AGGREGATIONS)}")
    if len(logits) != len(document_index):
        raise ValueError(f"got {len(logits)} window logits for {len(document_index)} windows")
    if num_documents is None:
        num_documents = int(document_index.max()) + 1 if len(document_index) else 0
    counts = np.bincount(document_index, minlength=num_documents)
    if len(counts) > num_documents or (counts == 0).any():
        raise ValueError("every document needs at least one window, and window indices must be < num_documents")
    if how == "mean":
        sums = np.zeros((num_documents, *logits.shape[1:]), dtype=np.float64)
        np.add.at(sums, document_index, logits)
        return (sums / counts.reshape(-1, *([1] * (logits.ndim - 1)))).astype(logits.dtype)
    maxima = np.full((num_documents, *logits.shape[1:]), -np.inf, dtype=logits.dtype)
    np.maximum.at(maxima, document_index, logits)
    return maxima


def document_labels(window_labels: np.ndarray, document_index: np.ndarray, num_documents: int) -> np.ndarray:
    """Each document's label from its windows' labels (all equal: every window carries its document's label); a
    multi-label document's multi-hot row likewise."""
    window_labels = np.asarray(window_labels)
    labels = np.empty((num_documents, *window_labels.shape[1:]), dtype=window_labels.dtype)
    labels[np.asarray(document_index)] = window_labels
    return labels


# --- the dataset summary ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LengthSummary:
    """Token counts of a split's documents (special tokens included, before any truncation), and per document
    whether ``options`` leaves some of its tokens unread and how many windows it takes."""

    lengths: np.ndarray
    truncated: np.ndarray
    windows: np.ndarray
    max_length: int
    options: LongTextOptions

    @property
    def truncated_fraction(self) -> float:
        return float(self.truncated.mean()) if len(self.truncated) else 0.0

    def describe(self) -> str:
        """``tokens p50 .., p90 .., p99 .., max .. (246 of 2,000 (12.3%) truncated at 256, head)`` (+ windows with
        chunks)."""
        if not len(self.lengths):
            return "no texts"
        p50, p90, p99 = np.percentile(self.lengths, [50, 90, 99]).astype(int)
        cut = f"{int(self.truncated.sum()):,} of {len(self.truncated):,} ({100 * self.truncated_fraction:.1f}%)"
        text = (
            f"tokens p50 {p50}, p90 {p90}, p99 {p99}, max {int(self.lengths.max())} "
            f"({cut} truncated at {self.max_length}, {self.options.mode}"
        )
        if self.options.mode == "chunks":
            text += f"; {self.windows.mean():.2f} windows per text, at most {self.options.window_cap}"
        return text + ")"

    def hint(self) -> str | None:
        """A hint naming the setting to change when more than 20% of the texts lose tokens; else None."""
        if self.truncated_fraction <= TRUNCATION_HINT_FRACTION:
            return None
        share = f"{100 * self.truncated_fraction:.0f}% of the training texts"
        if self.options.mode == "chunks":
            return (
                f"{share} need more than {self.options.window_cap} windows of {self.max_length} tokens and are "
                "partly skipped; raise data.max_windows (--set data.max_windows=N) or --max-length."
            )
        lost = {"head": "their end", "tail": "their start", "head_tail": "their middle"}[self.options.mode]
        # Only the modes the run does not already use are worth naming (the IMDb presets read head_tail).
        remedies = [
            f"--long-text {mode} (data.long_text={mode}) {what}"
            for mode, what in (("head_tail", "keeps both ends"), ("chunks", "reads all of it"))
            if mode != self.options.mode
        ]
        return (
            f"{share} are longer than {self.max_length} tokens and lose {lost} (data.long_text={self.options.mode}); "
            f"{', '.join(remedies)}, or raise --max-length."
        )


def summarize_lengths(
    tokenizer: Any,
    texts: Sequence[str],
    pairs: Sequence[str] | None,
    max_length: int,
    options: LongTextOptions | None = None,
) -> LengthSummary:
    """Token counts and truncation of ``texts`` under ``options``, from one tokenization without special tokens
    (replaces ``tokenize.token_lengths`` in the dataset summary: the same counts)."""
    options = options or LongTextOptions()
    options.validate(max_length)
    pair = pairs is not None
    specials = special_tokens(tokenizer, pair).count if options.mode != "head" else _special_count(tokenizer, pair)
    capacity = max_length - specials
    if options.mode != "head":
        options.check_capacity(capacity, max_length, specials, pair)
    first = [len(ids) for ids in _content_ids(tokenizer, list(texts))]
    second = [len(ids) for ids in _content_ids(tokenizer, list(pairs))] if pairs is not None else None
    lengths, truncated, windows = [], [], []
    for index, first_length in enumerate(first):
        second_length = second[index] if second is not None else None
        plan = plan_windows(first_length, second_length, options, max(capacity, 0))
        read = covered_tokens(plan)
        lengths.append(first_length + (second_length or 0) + specials)
        truncated.append(read != (first_length, second_length or 0))
        windows.append(len(plan))
    return LengthSummary(
        lengths=np.asarray(lengths, dtype=np.int64),
        truncated=np.asarray(truncated, dtype=bool),
        windows=np.asarray(windows, dtype=np.int64),
        max_length=max_length,
        options=options,
    )


def _special_count(tokenizer: Any, pair: bool) -> int:
    return int(tokenizer.num_special_tokens_to_add(pair=pair))


__all__ = [
    "AGGREGATIONS",
    "DEFAULT_MAX_WINDOWS",
    "MODES",
    "DocumentWindows",
    "LengthSummary",
    "LongTextOptions",
    "SpecialTokens",
    "aggregate_windows",
    "check_window_settings",
    "covered_tokens",
    "document_labels",
    "encode_documents",
    "longest_first_budgets",
    "plan_windows",
    "special_tokens",
    "summarize_lengths",
]
