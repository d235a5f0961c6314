"""Loading encoders: every freshly initialised weight is reported. A new classification head is expected (INFO);
an encoder weight the checkpoint lacks, or whose shape does not fit, is a WARNING that names it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from conftest import save_tiny_encoder
from distiltune.modeling import load_model_for_classification

LABELS = {0: "neg", 1: "pos"}


def test_a_fresh_head_is_reported_as_expected(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    encoder = save_tiny_encoder("bert", tmp_path / "bert")
    weights = load_file(encoder / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("classifier.")}, encoder / "model.safetensors")
    with caplog.at_level(logging.INFO, logger="distiltune"):
        load_model_for_classification(str(encoder), {0: "a", 1: "b", 2: "c"})
    head = [r for r in caplog.records if "classification head" in r.getMessage()]
    assert len(head) == 1 and head[0].levelno == logging.INFO and "classifier.weight" in head[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_encoder_weights_that_are_missing_or_do_not_fit_are_a_warning_naming_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    encoder = save_tiny_encoder("distilbert", tmp_path / "distilbert")
    weights = load_file(encoder / "model.safetensors")
    missing = "distilbert.transformer.layer.1.ffn.lin1.weight"
    resized = "distilbert.embeddings.word_embeddings.weight"
    del weights[missing]
    weights[resized] = weights[resized][:-5].clone()  # a checkpoint with a smaller vocabulary
    save_file(weights, encoder / "model.safetensors")
    with caplog.at_level(logging.INFO, logger="distiltune"):
        load_model_for_classification(str(encoder), LABELS)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert missing in warnings[0] and resized in warnings[0] and "random values" in warnings[0]
    assert "checkpoint (" in warnings[0]  # the mismatched shapes are given
