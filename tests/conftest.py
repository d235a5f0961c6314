"""Shared fixtures: offline environment, tiny random encoders with a real WordPiece tokenizer, tiny data.

Every model here is built on the fly and saved to a temp dir; tests hand the *path* to ``model.name``,
which is the same code path as a hub id, with no network.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# Checkpoints stay atomic without fsync; fsync only adds power-cut durability and costs seconds on a busy disk.
os.environ.setdefault("DISTILTUNE_FSYNC", "0")

FIXTURES = Path(__file__).parent / "fixtures"
BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(FIXTURES))

from make_fixtures import ACTIONS, FILLER, NEGATIVE, POSITIVE, SUBJECTS  # noqa: E402

# The HTTP server tests' fixtures (tiny runs, a live server): a plugin module, not a second conftest.py, which would
# shadow this one for the `from conftest import ...` of other test files.
pytest_plugins = ["serving_fixtures"]


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported afresh as the module ``name``: benchmarks are scripts, not a package, and
    they import one another by that name, so a test and the scripts it loads share one copy."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
EXTRA_WORDS = [
    "what",
    "a",
    "wonderful",
    "day",
    "new",
    "graphics",
    "card",
    "sports",
    "news",
    "game",
    "team",
    "market",
    "stock",
    "price",
    "computer",
    "software",
    "science",
    "space",
    "world",
    "war",
    "election",
]
VOCAB = list(
    dict.fromkeys(
        SPECIAL_TOKENS
        + POSITIVE
        + NEGATIVE
        + FILLER
        + SUBJECTS
        + ACTIONS
        + EXTRA_WORDS
        + list("abcdefghijklmnopqrstuvwxyz")
        + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    )
)
ARCHITECTURES = ("distilbert", "bert", "roberta")
#: Encoders whose conventions differ from BERT's, built on demand by the same fixture: XLNet (no position limit,
#: bare-Parameter attention, <sep> <cls> at the END and LEFT padding, SentencePiece), DeBERTa-v3 (``deberta-v2``:
#: disentangled relative attention, SentencePiece) and DeBERTa v1 (``deberta``: fused ``in_proj``).
OTHER_ARCHITECTURES = ("xlnet", "deberta-v2", "deberta")
XLNET_SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<cls>", "<sep>", "<pad>", "<mask>", "<eod>", "<eop>"]


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never read or fill the user's ~/.cache/distiltune (tokenization cache)."""
    os.environ["DISTILTUNE_CACHE_DIR"] = str(tmp_path_factory.mktemp("distiltune-cache"))


@pytest.fixture(autouse=True)
def _quiet_and_seeded() -> None:
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))


def _unigram_vocab(special_tokens: list[str]) -> list[tuple[str, float]]:
    """A SentencePiece-style vocabulary: every word of VOCAB as one "▁word" piece, single letters as fallback."""
    words = [token for token in VOCAB if token not in SPECIAL_TOKENS and not token.startswith("##")]
    pieces = [(token, 0.0) for token in special_tokens] + [("\u2581" + word, -2.0) for word in words]
    pieces += [("\u2581", -4.0)] + [(letter, -6.0) for letter in "abcdefghijklmnopqrstuvwxyz"]
    return list(dict.fromkeys(pieces))


def build_tokenizer(architecture: str):
    if architecture == "xlnet":
        from transformers import XLNetTokenizer

        # The real class: pads on the LEFT and ends every input with <sep> <cls>.
        return XLNetTokenizer(vocab=_unigram_vocab(XLNET_SPECIAL_TOKENS), unk_id=0, do_lower_case=True)
    if architecture == "deberta-v2":
        from transformers import DebertaV2Tokenizer

        return DebertaV2Tokenizer(vocab=_unigram_vocab(SPECIAL_TOKENS), unk_id=1, do_lower_case=True)
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertTokenizerFast, DistilBertTokenizerFast, PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(VOCAB)}
    backend = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    special = {
        "unk_token": "[UNK]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
    }
    if architecture == "distilbert":
        return DistilBertTokenizerFast(tokenizer_object=backend, **special)
    if architecture == "bert":
        return BertTokenizerFast(tokenizer_object=backend, **special)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, model_input_names=["input_ids", "attention_mask"], model_max_length=64, **special
    )


def build_model(architecture: str, num_labels: int = 2):
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        DistilBertConfig,
        DistilBertForSequenceClassification,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    torch.manual_seed(0)
    if architecture in OTHER_ARCHITECTURES:
        return _build_other_model(architecture, num_labels)
    vocab_size = len(VOCAB)
    if architecture == "distilbert":
        config = DistilBertConfig(
            vocab_size=vocab_size,
            dim=32,
            n_layers=2,
            n_heads=2,
            hidden_dim=64,
            max_position_embeddings=64,
            num_labels=num_labels,
            pad_token_id=0,
        )
        return DistilBertForSequenceClassification(config)
    if architecture == "bert":
        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
            num_labels=num_labels,
            pad_token_id=0,
        )
        return BertForSequenceClassification(config)
    config = RobertaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=66,
        num_labels=num_labels,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
        type_vocab_size=1,
    )
    return RobertaForSequenceClassification(config)


def _build_other_model(architecture: str, num_labels: int):
    from transformers import (
        DebertaConfig,
        DebertaForSequenceClassification,
        DebertaV2Config,
        DebertaV2ForSequenceClassification,
        XLNetConfig,
        XLNetForSequenceClassification,
    )

    # A wider initialisation than the released checkpoints' 0.02, so a tiny random model's predictions vary from
    # input to input and the parity checks below compare something.
    small = {"num_labels": num_labels, "initializer_range": 0.2}
    if architecture == "xlnet":
        vocab_size = len(build_tokenizer("xlnet"))
        config = XLNetConfig(
            vocab_size=vocab_size, d_model=32, n_layer=2, n_head=2, d_inner=64, pad_token_id=5, **small
        )
        return XLNetForSequenceClassification(config)
    # DeBERTa's relative attention as the released checkpoints use it (deberta-v3-base, deberta-base).
    deberta = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        "relative_attention": True,
        "position_biased_input": False,
        "type_vocab_size": 0,
        "pad_token_id": 0,
        **small,
    }
    if architecture == "deberta-v2":
        config = DebertaV2Config(
            vocab_size=len(build_tokenizer("deberta-v2")),
            pos_att_type=["p2c", "c2p"],
            position_buckets=16,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            **deberta,
        )
        return DebertaV2ForSequenceClassification(config)
    config = DebertaConfig(vocab_size=len(VOCAB), pos_att_type=["c2p", "p2c"], **deberta)
    return DebertaForSequenceClassification(config)


def save_tiny_encoder(architecture: str, directory: Path) -> Path:
    build_tokenizer(architecture).save_pretrained(directory)
    build_model(architecture).save_pretrained(directory)
    return directory


class TinyEncoders(dict):
    """{architecture: saved tiny encoder dir}; an architecture of OTHER_ARCHITECTURES is built when first asked for,
    so the tests that never use it do not pay for it."""

    def __init__(self, root: Path) -> None:
        super().__init__({arch: save_tiny_encoder(arch, root / arch) for arch in ARCHITECTURES})
        self.root = root

    def __missing__(self, architecture: str) -> Path:
        if architecture not in OTHER_ARCHITECTURES:
            raise KeyError(architecture)
        self[architecture] = save_tiny_encoder(architecture, self.root / architecture)
        return self[architecture]


@pytest.fixture(scope="session")
def tiny_encoders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One saved tiny random encoder per architecture: {"distilbert": path, "bert": path, "roberta": path}, plus
    "xlnet", "deberta-v2" and "deberta" on first use."""
    return TinyEncoders(tmp_path_factory.mktemp("encoders"))


@pytest.fixture(scope="session")
def tiny_model(tiny_encoders: dict[str, Path]) -> str:
    """The default tiny encoder (DistilBERT) as a path string."""
    return str(tiny_encoders["distilbert"])


@pytest.fixture
def fast_overrides(tmp_path: Path, tiny_model: str) -> dict[str, object]:
    """Config overrides for a run that takes a second or two: tiny model, short sequences, few steps."""
    return {
        "model.name": tiny_model,
        "data.dataset": str(FIXTURES / "tiny.csv"),
        "data.text_column": "review",
        "data.label_column": "sentiment",
        "data.max_length": 16,
        "data.validation_fraction": 0.25,
        "train.epochs": 2,
        "train.batch_size": 4,
        "train.lr": 1e-3,
        "train.precision": "fp32",
        "train.logging_steps": 1,
        "run.output_dir": str(tmp_path / "runs"),
    }


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


def keyword_rows(n: int, seed: int) -> list[dict[str, str]]:
    """Sentences of filler words with one sentiment keyword: separable by that keyword alone."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        words = rng.sample(["the", "movie", "film", "was", "plot", "acting", "story", "this", "it", "is"], 5)
        words.insert(rng.randrange(len(words)), rng.choice(POSITIVE if positive else NEGATIVE))
        rows.append({"text": " ".join(words), "label": "pos" if positive else "neg"})
    return rows


@pytest.fixture(scope="session")
def keyword_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with train (160), validation (40) and test (60) JSONL files of keyword-separable sentences."""
    import json

    folder = tmp_path_factory.mktemp("keyword-data")
    for split, n, seed in (("train", 160, 1), ("validation", 40, 2), ("test", 60, 3)):
        with (folder / f"{split}.jsonl").open("w") as handle:
            for row in keyword_rows(n, seed):
                handle.write(json.dumps(row) + "\n")
    return folder


def pretrain_on_keywords(architecture: str, directory: Path, steps: int = 150) -> Path:
    """A tiny encoder that has learned the sentiment keywords (a stand-in for a pretrained checkpoint), saved with a
    zeroed final classifier layer: at learning rate 0 it predicts one label for everything (accuracy 0.5 on balanced
    data), and methods that freeze the encoder (head, LoRA, soft prompts) have informative features to learn from."""
    import torch

    tokenizer, model = build_tokenizer(architecture), build_model(architecture)
    rows = keyword_rows(400, 11)
    encoded = tokenizer([r["text"] for r in rows], padding=True, truncation=True, max_length=16, return_tensors="pt")
    labels = torch.tensor([1 if r["label"] == "pos" else 0 for r in rows])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, len(rows), (32,), generator=generator)
        loss = model(**{key: value[batch] for key, value in encoded.items()}, labels=labels[batch]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    final = model.classifier.out_proj if architecture == "roberta" else model.classifier
    with torch.no_grad():
        final.weight.zero_()
        final.bias.zero_()
    tokenizer.save_pretrained(directory)
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def keyword_encoders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny DistilBERT and BERT that know the keywords, with zeroed classifiers (:func:`pretrain_on_keywords`)."""
    root = tmp_path_factory.mktemp("keyword-encoders")
    return {arch: pretrain_on_keywords(arch, root / arch) for arch in ("distilbert", "bert")}
