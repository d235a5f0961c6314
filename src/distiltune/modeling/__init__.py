"""Encoders and tokenizers (hub ids, local directories or packaged aliases) and the classification heads on top.

``ModelConfig`` is the ``model`` section of a run's config. Importing this package is cheap: the loading functions
import transformers when they are called.
"""

from __future__ import annotations

from distiltune.modeling.config import ModelConfig
from distiltune.modeling.loading import (
    ATTENTION_DROPOUT_KEYS,
    PACKAGED_MODELS,
    encoder_class,
    load_classifier_config,
    load_classifier_from_dir,
    load_encoder_config,
    load_model_for_classification,
    load_tokenizer,
    model_limit,
    model_max_length,
    model_not_found,
    resolve_model_name,
)

__all__ = [
    "ATTENTION_DROPOUT_KEYS",
    "PACKAGED_MODELS",
    "ModelConfig",
    "encoder_class",
    "load_classifier_config",
    "load_classifier_from_dir",
    "load_encoder_config",
    "load_model_for_classification",
    "load_tokenizer",
    "model_limit",
    "model_max_length",
    "model_not_found",
    "resolve_model_name",
]
