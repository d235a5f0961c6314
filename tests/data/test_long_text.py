"""How long texts are read (data.long_text): head is today's tokenization, tail/head_tail keep exactly the tokens
they promise, chunks cover a document in overlapping windows like transformers' overflow, fast and slow tokenizers
agree, window logits aggregate into one row per document, and bad settings are one-line ConfigErrors."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import VOCAB, build_model, build_tokenizer
from distiltune.data.cache import cache_key, cached_tokenize
from distiltune.data.long_text import (
    LongTextOptions,
    aggregate_windows,
    document_labels,
    encode_documents,
    longest_first_budgets,
    plan_windows,
    special_tokens,
    summarize_lengths,
)
from distiltune.data.tokenize import token_lengths, tokenize_frame
from distiltune.errors import ConfigError
from distiltune.inference.batched import InferenceSettings, predict_logits

WORDS = [word for word in VOCAB if word.isalpha() and len(word) > 1]  # whole words: one token each


def random_texts(count: int, seed: int, most_words: int = 40) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(0, most_words))) for _ in range(count)]


TEXTS = random_texts(24, seed=1)
PAIRS = random_texts(24, seed=2)
CHUNKS = LongTextOptions("chunks", stride=3, max_windows=50)


def roberta_style_tokenizer():
    """<s> A </s></s> B </s>, no token types: two special tokens between the texts of a pair."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(VOCAB)}
    backend = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.RobertaProcessing(("[SEP]", vocab["[SEP]"]), ("[CLS]", vocab["[CLS]"]))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        model_input_names=["input_ids", "attention_mask"],
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )


def xlnet_style_tokenizer():
    """A <sep> B <sep> <cls>: special tokens at the end, the last one with token type 2."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(VOCAB)}
    backend = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="$A:0 [SEP]:0 [CLS]:2",
        pair="$A:0 [SEP]:0 $B:1 [SEP]:1 [CLS]:2",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        padding_side="left",
    )


def tokenizer_for(name: str, truncation_side: str = "right"):
    builders = {"roberta_style": roberta_style_tokenizer, "xlnet_style": xlnet_style_tokenizer}
    tokenizer = builders[name]() if name in builders else build_tokenizer(name)
    tokenizer.truncation_side = truncation_side
    return tokenizer


def slow_tokenizer(tmp_path: Path):
    """A pure-Python WordPiece tokenizer over the same vocabulary as ``build_tokenizer('bert')``."""
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerLegacy(
        str(vocab_file), do_lower_case=True, model_input_names=["input_ids", "token_type_ids", "attention_mask"]
    )
    assert not tokenizer.is_fast
    return tokenizer


def content(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


# --- head, tail, head_tail -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["distilbert", "bert", "roberta", "roberta_style", "slow"])
@pytest.mark.parametrize("with_pairs", [False, True])
@pytest.mark.parametrize("max_length", [8, 13, 32])
def test_head_is_exactly_todays_tokenization(name: str, with_pairs: bool, max_length: int, tmp_path: Path) -> None:
    tokenizer = slow_tokenizer(tmp_path) if name == "slow" else tokenizer_for(name)
    pairs = PAIRS if with_pairs else None
    windows = encode_documents(tokenizer, TEXTS, pairs, max_length=max_length)
    expected = tokenizer(TEXTS, pairs, truncation=True, max_length=max_length, padding=False)
    assert windows.columns == {key: list(values) for key, values in expected.items()}
    assert windows.document_index.tolist() == list(range(len(TEXTS)))


@pytest.mark.parametrize("name", ["distilbert", "bert", "roberta_style", "xlnet_style"])
@pytest.mark.parametrize("with_pairs", [False, True])
@pytest.mark.parametrize("max_length", [8, 13, 32])
def test_head_and_tail_on_token_ids_equal_the_fast_tokenizers_truncation(
    name: str, with_pairs: bool, max_length: int
) -> None:
    """The id-level plan (longest_first budgets per text, special tokens put back) against the tokenizer itself:
    head with truncation_side right, tail with truncation_side left, pairs cut by longest_first."""
    pairs = PAIRS if with_pairs else None
    tokenizer = tokenizer_for(name)
    layout = special_tokens(tokenizer, pair=with_pairs)
    capacity = max_length - layout.count
    head = LongTextOptions("head")
    for index, text in enumerate(TEXTS):
        first = content(tokenizer, text)
        second = content(tokenizer, PAIRS[index]) if with_pairs else None
        [(first_spans, second_spans)] = plan_windows(len(first), len(second) if second else None, head, capacity)
        built = layout.build(
            [first[i] for a, b in first_spans for i in range(a, b)],
            [second[i] for a, b in second_spans for i in range(a, b)] if second is not None else None,
        )
        # A batch call, as distiltune makes: a single call would read an empty second text as no pair at all.
        expected = tokenizer([text], [PAIRS[index]] if with_pairs else None, truncation=True, max_length=max_length)
        assert built == {key: expected[key][0] for key in built}, index

    tail = encode_documents(tokenizer, TEXTS, pairs, max_length=max_length, options=LongTextOptions("tail"))
    left = tokenizer_for(name, truncation_side="left")
    expected = left(TEXTS, pairs, truncation=True, max_length=max_length, padding=False)
    assert tail.columns == {key: list(values) for key, values in expected.items()}


def test_longest_first_budgets_follow_the_tokenizers_rule() -> None:
    assert longest_first_budgets(30, None, 10) == (10, 0)
    assert longest_first_budgets(3, 4, 10) == (3, 4)  # fits: nothing cut
    assert longest_first_budgets(3, 30, 10) == (3, 7)  # only the longer is cut
    assert longest_first_budgets(30, 3, 10) == (7, 3)
    assert longest_first_budgets(30, 30, 11) == (5, 6)  # both cut: the odd token to the second on a tie
    assert longest_first_budgets(40, 30, 11) == (6, 5)  # ...else to the longer


def test_head_tail_keeps_exactly_the_first_and_last_tokens_of_a_single_text() -> None:
    tokenizer = build_tokenizer("bert")
    options = LongTextOptions("head_tail", head_tokens=5)
    max_length = 16  # 14 content tokens: 5 from the start, 9 from the end
    windows = encode_documents(tokenizer, TEXTS, max_length=max_length, options=options)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    for text, ids in zip(TEXTS, windows.columns["input_ids"], strict=True):
        tokens = content(tokenizer, text)
        kept = tokens if len(tokens) <= 14 else tokens[:5] + tokens[-9:]
        assert ids == [cls, *kept, sep]
    assert any(len(content(tokenizer, text)) > 14 for text in TEXTS)

    default = LongTextOptions("head_tail")  # unset head_tokens: a quarter of the content budget
    [ids] = encode_documents(tokenizer, [TEXTS[0] * 3], max_length=max_length, options=default).columns["input_ids"]
    tokens = content(tokenizer, TEXTS[0] * 3)
    assert ids[1:-1] == tokens[:3] + tokens[-11:]


def test_head_tail_pairs_split_each_texts_longest_first_budget_in_the_same_proportion() -> None:
    tokenizer = build_tokenizer("bert")
    options = LongTextOptions("head_tail", head_tokens=8)
    max_length = 20  # 3 special tokens: 17 content tokens, head share 8/17
    long_a, long_b, short = " ".join(WORDS[:30]), " ".join(WORDS[30:62]), "great fun plot"
    a, b, s = (content(tokenizer, text) for text in (long_a, long_b, short))
    assert len(a) >= 30 and len(b) >= 30 and len(s) == 3

    windows = encode_documents(tokenizer, [long_a, short], [long_b, long_b], max_length=max_length, options=options)
    first, second = windows.columns["input_ids"], windows.columns["token_type_ids"]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    # Both long: budgets 8 and 9; heads 8*8//17 = 3 and 9*8//17 = 4.
    assert first[0] == [cls, *a[:3], *a[-5:], sep, *b[:4], *b[-5:], sep]
    assert second[0] == [0] * 10 + [1] * 10
    # A short first text keeps all 3 tokens; the second's budget is 14: head 14*8//17 = 6, tail 8.
    assert first[1] == [cls, *s, sep, *b[:6], *b[-8:], sep]


# --- chunks ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_length", [8, 12])
@pytest.mark.parametrize("stride", [0, 2, 4])
def test_chunks_equal_the_fast_tokenizers_overflowing_windows(max_length: int, stride: int) -> None:
    tokenizer = build_tokenizer("bert")
    options = LongTextOptions("chunks", stride=stride, max_windows=100)
    windows = encode_documents(tokenizer, TEXTS, max_length=max_length, options=options)
    expected = tokenizer(
        TEXTS, truncation=True, max_length=max_length, stride=stride, return_overflowing_tokens=True, padding=False
    )
    assert windows.document_index.tolist() == expected["overflow_to_sample_mapping"]
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert windows.columns[key] == expected[key], key

    # A pair whose first text fits in half a window slides over the second, as truncation="only_second" does.
    content_budget = max_length - 3
    if stride >= content_budget - content_budget // 2:
        return  # too large an overlap for a pair: a ConfigError (test_a_pair_leaves_the_slid_text_half_a_window...)
    short = ["great fun", "good"]
    windows = encode_documents(tokenizer, short, TEXTS[:2], max_length=max_length, options=options)
    expected = tokenizer(
        short,
        TEXTS[:2],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        padding=False,
    )
    assert windows.document_index.tolist() == expected["overflow_to_sample_mapping"]
    assert windows.columns["input_ids"] == expected["input_ids"]
    assert windows.columns["token_type_ids"] == expected["token_type_ids"]


def test_chunks_cover_the_document_with_the_stride_and_respect_max_windows() -> None:
    tokenizer = build_tokenizer("bert")
    text = " ".join(WORDS[:40])
    tokens = content(tokenizer, text)
    assert len(tokens) == 40
    windows = encode_documents(tokenizer, [text], max_length=12, options=LongTextOptions("chunks", stride=3))
    parts = [ids[1:-1] for ids in windows.columns["input_ids"]]  # 10 content tokens each, 7 new per window
    assert [len(part) for part in parts] == [10, 10, 10, 10, 10, 5]
    assert parts[0] == tokens[:10] and parts[-1] == tokens[-5:]
    for before, after in zip(parts, parts[1:], strict=False):
        assert before[-3:] == after[:3]  # consecutive windows share exactly the stride
    assert [token for part in parts[:1] + [p[3:] for p in parts[1:]] for token in part] == tokens

    capped = encode_documents(
        tokenizer, [text], max_length=12, options=LongTextOptions("chunks", stride=3, max_windows=3)
    )
    kept = [ids[1:-1] for ids in capped.columns["input_ids"]]
    assert kept == [parts[0], parts[3], parts[5]]  # evenly spread over the six (2.5 rounds up), ends kept
    single = encode_documents(tokenizer, [text], max_length=12, options=LongTextOptions("chunks", max_windows=1))
    assert [ids[1:-1] for ids in single.columns["input_ids"]] == [tokens[:10]]

    summary = summarize_lengths(
        tokenizer, [text, "great"], None, 12, LongTextOptions("chunks", stride=3, max_windows=3)
    )
    assert summary.windows.tolist() == [3, 1] and summary.truncated.tolist() == [True, False]
    summary = summarize_lengths(tokenizer, [text, "great"], None, 12, LongTextOptions("chunks", stride=3))
    assert summary.windows.tolist() == [6, 1] and summary.truncated.tolist() == [False, False]


def test_chunks_of_a_pair_slide_over_the_longer_text_and_repeat_the_other() -> None:
    tokenizer = build_tokenizer("bert")
    long_text, short = " ".join(WORDS[:30]), "great fun"
    tokens, other = content(tokenizer, long_text), content(tokenizer, short)
    options = LongTextOptions("chunks", stride=2)
    windows = encode_documents(tokenizer, [long_text], [short], max_length=12, options=options)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    for ids, types in zip(windows.columns["input_ids"], windows.columns["token_type_ids"], strict=True):
        assert ids[-4:] == [sep, *other, sep] and ids[0] == cls  # the short second text in every window
        assert types == [0] * (len(ids) - 3) + [1] * 3
    parts = [ids[1:-4] for ids in windows.columns["input_ids"]]  # 12 - 3 specials - 2 repeated = 7 per window
    assert parts[0] == tokens[:7] and parts[1][:2] == parts[0][-2:] and parts[-1][-1] == tokens[-1]

    long_other = " ".join(WORDS[40:60])  # both long: the shorter is cut to half the budget (4 of 9 tokens)
    windows = encode_documents(tokenizer, [long_other], [long_text], max_length=12, options=options)
    assert all(ids[1:5] == content(tokenizer, long_other)[:4] for ids in windows.columns["input_ids"])


@pytest.mark.parametrize(
    "options", [LongTextOptions("tail"), LongTextOptions("head_tail", head_tokens=3), CHUNKS, LongTextOptions("head")]
)
@pytest.mark.parametrize("with_pairs", [False, True])
def test_slow_and_fast_tokenizers_give_the_same_windows(
    options: LongTextOptions, with_pairs: bool, tmp_path: Path
) -> None:
    fast, slow = build_tokenizer("bert"), slow_tokenizer(tmp_path)
    pairs = PAIRS if with_pairs else None
    if options.mode == "head" and with_pairs:
        pairs = ["great fun"] * len(TEXTS)  # the slow longest_first gives the odd token to the other text on ties
    from_fast = encode_documents(fast, TEXTS, pairs, max_length=13, options=options)
    from_slow = encode_documents(slow, TEXTS, pairs, max_length=13, options=options)
    assert from_slow.columns == from_fast.columns
    assert from_slow.document_index.tolist() == from_fast.document_index.tolist()


# --- windows into training rows and predictions -----------------------------------------------------------------


def test_tokenize_frame_gives_one_row_per_window_with_its_documents_label() -> None:
    tokenizer = build_tokenizer("distilbert")
    frame = pd.DataFrame({"text": TEXTS, "label": [i % 3 for i in range(len(TEXTS))]})
    head = tokenize_frame(frame, tokenizer, 16)
    # Today's implementation, inlined: head gives the same dataset.
    encoded = tokenizer(TEXTS, None, truncation=True, max_length=16, padding=False)
    expected = {key: list(value) for key, value in encoded.items()}
    expected["length"] = [len(ids) for ids in encoded["input_ids"]]
    expected["labels"] = frame["label"].astype(int).tolist()
    assert head.to_dict() == expected
    assert head.features == tokenize_frame.__globals__["datasets"].Dataset.from_dict(expected).features

    chunked = tokenize_frame(frame, tokenizer, 16, CHUNKS)
    windows = encode_documents(tokenizer, TEXTS, max_length=16, options=CHUNKS)
    assert len(chunked) == len(windows) > len(frame)
    assert chunked["labels"] == [i % 3 for i in windows.document_index.tolist()]
    assert chunked["length"] == [len(ids) for ids in chunked["input_ids"]]
    assert max(chunked["length"]) <= 16


def test_cache_key_holds_the_settings_that_change_the_rows(tmp_path: Path) -> None:
    tokenizer = build_tokenizer("distilbert")
    frame = pd.DataFrame({"text": TEXTS, "label": [i % 2 for i in range(len(TEXTS))]})
    key = cache_key(frame, tokenizer, 16)
    assert cache_key(frame, tokenizer, 16, LongTextOptions()) == key  # head keeps its existing entries
    keys = {
        cache_key(frame, tokenizer, 16, options)
        for options in (
            LongTextOptions("tail"),
            LongTextOptions("head_tail"),
            LongTextOptions("head_tail", head_tokens=4),
            LongTextOptions("chunks"),
            LongTextOptions("chunks", stride=2),
            LongTextOptions("chunks", max_windows=2),
        )
    }
    assert len(keys) == 6 and key not in keys
    assert cache_key(frame, tokenizer, 16, LongTextOptions("chunks", window_aggregation="max")) == cache_key(
        frame, tokenizer, 16, LongTextOptions("chunks")
    ), "the aggregation acts on logits: it must not split the cache"

    first, hit = cached_tokenize(frame, tokenizer, 16, cache_dir=tmp_path, long_text=CHUNKS)
    assert not hit and len(first) > len(frame)
    again, hit = cached_tokenize(frame, tokenizer, 16, cache_dir=tmp_path, long_text=CHUNKS)
    assert hit and again["input_ids"] == first["input_ids"]
    _, hit = cached_tokenize(frame, tokenizer, 16, cache_dir=tmp_path)
    assert not hit


@pytest.mark.parametrize("with_pairs", [False, True])
def test_chunked_prediction_is_the_aggregate_of_its_windows_predicted_one_by_one(with_pairs: bool) -> None:
    tokenizer, model = build_tokenizer("distilbert"), build_model("distilbert", num_labels=3).eval()
    texts, pairs = TEXTS[:10], PAIRS[:10] if with_pairs else None
    options = LongTextOptions("chunks", stride=3, max_windows=2)
    windows = encode_documents(tokenizer, texts, pairs, max_length=16, options=options)
    assert set(np.bincount(windows.document_index)) == {1, 2}  # the cap binds for some documents
    with torch.inference_mode():
        one_by_one = [
            model(**{key: torch.tensor([values[i]]) for key, values in windows.columns.items()}).logits[0].numpy()
            for i in range(len(windows))
        ]
    for how in ("mean", "max"):
        chosen = dataclasses.replace(options, window_aggregation=how)
        settings = InferenceSettings(max_length=16, batch_size=4, max_batch_tokens=40, long_text=chosen)
        logits = predict_logits(model, tokenizer, texts, pairs, settings)
        assert logits.shape == (len(texts), 3) and logits.dtype == np.float32
        for document in range(len(texts)):
            own = np.stack([one_by_one[i] for i in np.flatnonzero(windows.document_index == document)])
            expected = own.mean(axis=0) if how == "mean" else own.max(axis=0)
            np.testing.assert_allclose(logits[document], expected, atol=1e-5, err_msg=f"{how}, document {document}")
        # A document's row does not depend on its neighbours: the same text alone gives the same logits.
        alone = predict_logits(
            model, tokenizer, texts[5:6], pairs[5:6] if pairs else None, InferenceSettings(16, long_text=chosen)
        )
        np.testing.assert_allclose(alone[0], logits[5], atol=1e-5)


def test_aggregate_windows() -> None:
    logits = np.array([[1.0, 0.0], [3.0, -4.0], [0.5, 0.5], [-1.0, 2.0]], dtype=np.float32)
    document_index = np.array([1, 0, 1, 2])
    mean = aggregate_windows(logits, document_index, "mean")
    np.testing.assert_allclose(mean, [[3.0, -4.0], [0.75, 0.25], [-1.0, 2.0]])
    assert mean.dtype == np.float32
    np.testing.assert_array_equal(aggregate_windows(logits, document_index, "max"), [[3, -4], [1, 0.5], [-1, 2]])
    once = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    for how in ("mean", "max"):  # one window per document: the logits, bit for bit
        assert np.array_equal(aggregate_windows(once, np.arange(5), how), once)
    with pytest.raises(ValueError, match="at least one window"):
        aggregate_windows(logits, np.array([0, 0, 2, 2]), "mean")
    with pytest.raises(ValueError, match="unknown window aggregation"):
        aggregate_windows(logits, document_index, "median")
    assert document_labels(np.array([7, 7, 8, 9, 9]), np.array([0, 0, 1, 2, 2]), 3).tolist() == [7, 8, 9]


# --- settings and the dataset summary ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "max_length", "message"),
    [
        (LongTextOptions("middle"), 16, "data.long_text must be one of head, tail, head_tail, chunks"),
        (LongTextOptions("chunks", stride=16), 16, r"data.stride \(16\) must be smaller than data.max_length"),
        (LongTextOptions("chunks", stride=14), 16, r"data.stride \(14\) must be smaller than the 14 tokens"),
        (LongTextOptions("chunks", stride=-1), 16, "data.stride must be >= 0"),
        (LongTextOptions("chunks", max_windows=0), 16, "data.max_windows must be >= 1"),
        (LongTextOptions("chunks", window_aggregation="median"), 16, "data.window_aggregation must be one of"),
        (LongTextOptions("head_tail", head_tokens=15), 16, r"data.head_tokens \(15\) exceeds the 14 tokens"),
        (LongTextOptions("head", stride=2), 16, "data.stride is only read with data.long_text=chunks"),
        (LongTextOptions("tail", head_tokens=2), 16, "data.head_tokens is only read with data.long_text=head_tail"),
        (LongTextOptions("head_tail", max_windows=2), 16, "data.max_windows is only read with"),
        (LongTextOptions("tail"), 2, "leaves no room for text"),
    ],
)
def test_bad_settings_are_one_line_config_errors(options: LongTextOptions, max_length: int, message: str) -> None:
    tokenizer = build_tokenizer("bert")
    with pytest.raises(ConfigError, match=message) as caught:
        encode_documents(tokenizer, TEXTS, max_length=max_length, options=options)
    assert "\n" not in str(caught.value)


def test_a_pair_leaves_the_slid_text_half_a_window_so_the_stride_must_fit_there() -> None:
    tokenizer = build_tokenizer("bert")
    options = LongTextOptions("chunks", stride=7)  # a single text: 14 per window; a pair: 13, the slid text 7
    assert len(encode_documents(tokenizer, TEXTS, max_length=16, options=options)) > len(TEXTS)
    with pytest.raises(ConfigError, match=r"data.stride \(7\) must be smaller than the 7 tokens the slid text"):
        encode_documents(tokenizer, TEXTS, PAIRS, max_length=16, options=options)


def test_options_from_a_data_config() -> None:
    from types import SimpleNamespace

    assert LongTextOptions.from_data_config(SimpleNamespace(max_length=128)) == LongTextOptions()
    data = SimpleNamespace(long_text="chunks", head_tokens=None, stride=32, max_windows=4, window_aggregation="max")
    options = LongTextOptions.from_data_config(data)
    assert (options.mode, options.stride, options.window_cap, options.aggregation) == ("chunks", 32, 4, "max")
    assert LongTextOptions("chunks").aggregation == "mean" and LongTextOptions("chunks").window_cap == 8


@pytest.mark.parametrize("with_pairs", [False, True])
def test_summary_counts_truncated_texts_and_hints_above_a_fifth(with_pairs: bool) -> None:
    tokenizer = build_tokenizer("bert")
    pairs = PAIRS if with_pairs else None
    summary = summarize_lengths(tokenizer, TEXTS, pairs, 24)
    frame = pd.DataFrame({"text": TEXTS, **({"text_pair": PAIRS} if with_pairs else {})})
    assert summary.lengths.tolist() == token_lengths(frame, tokenizer).tolist()
    assert summary.truncated.tolist() == (summary.lengths > 24).tolist()
    assert summary.truncated_fraction > 0.2
    assert "data.long_text=head_tail" in summary.hint() and "lose their end" in summary.hint()
    count = int((summary.lengths > 24).sum())
    assert f"{count} of {len(TEXTS)} ({100 * summary.truncated_fraction:.1f}%) truncated at 24" in summary.describe()

    head_tail = summarize_lengths(tokenizer, TEXTS, pairs, 24, LongTextOptions("head_tail"))
    assert "lose their middle" in head_tail.hint() and "--long-text chunks" in head_tail.hint()
    assert "--long-text head_tail" not in head_tail.hint()

    roomy = summarize_lengths(tokenizer, TEXTS, pairs, 64)
    assert roomy.truncated_fraction <= 0.2 and roomy.hint() is None

    chunks = summarize_lengths(tokenizer, TEXTS, pairs, 24, CHUNKS)
    # Chunks read all of a single text; of a pair, the repeated text loses its end when both exceed half the budget.
    half = (24 - 3) // 2
    both_long = [
        min(len(content(tokenizer, a)), len(content(tokenizer, b))) > half for a, b in zip(TEXTS, PAIRS, strict=True)
    ]
    assert chunks.truncated.tolist() == (both_long if with_pairs else [False] * len(TEXTS))
    assert chunks.windows.max() > 1 and (chunks.hint() is None) == (chunks.truncated_fraction <= 0.2)
    one_by_one = [
        len(encode_documents(tokenizer, [text], pairs[i : i + 1] if pairs else None, max_length=24, options=CHUNKS))
        for i, text in enumerate(TEXTS)
    ]
    assert chunks.windows.tolist() == one_by_one
