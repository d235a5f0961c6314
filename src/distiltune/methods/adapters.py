"""Saving and reloading PEFT models (LoRA, prompt and prefix tuning) together with their heads.

``model/`` holds peft's ``adapter_config.json`` + ``adapter_model.safetensors`` (the adapter *and* the
trained head, which the methods put in ``modules_to_save``), the base encoder's ``config.json`` with the
label maps, and ``head_config.json`` for an MLP head. Reloading rebuilds the base model from
``model.name`` in config.yaml (hub id, local directory or alias) and loads the adapter on top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from distiltune.errors import ConfigError, ModelError
from distiltune.modeling import model_not_found, resolve_model_name
from distiltune.modeling.heads import EncoderWithHead, has_custom_head, read_head_config
from distiltune.modeling.loading import report_fresh_weights

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def wrap(model: nn.Module, peft_config: Any) -> nn.Module:
    """``get_peft_model`` with peft's ValueErrors (unknown target modules, ...) turned into ConfigErrors."""
    from peft import get_peft_model

    try:
        return get_peft_model(model, peft_config)
    except ValueError as err:
        raise ConfigError(f"peft cannot apply {type(peft_config).__name__}: {_first_line(err)}") from None


def save_adapter(model: nn.Module, directory: Path) -> None:
    model.save_pretrained(directory, safe_serialization=True)
    base = model.get_base_model()
    if isinstance(base, EncoderWithHead):
        base.save_architecture(directory)
    else:
        base.config.save_pretrained(directory)


def load_adapter(directory: Path, model_config: Any, peft_config: Any | None = None) -> nn.Module:
    """The base model named in the run's config with the saved adapter and head on top (eval mode)."""
    from peft import PeftModel

    base = load_base_model(directory, model_config)
    try:
        model = PeftModel.from_pretrained(base, str(directory), config=peft_config, is_trainable=False)
    except (OSError, ValueError, RuntimeError) as err:
        raise ModelError(f"Cannot load the adapter in {directory}: {_first_line(err)}") from None
    return model


def load_base_model(directory: Path, model_config: Any) -> nn.Module:
    """The pretrained encoder with an (untrained) head shaped like the saved one; the adapter fills the head."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    saved_config = AutoConfig.from_pretrained(str(directory))
    path = resolve_model_name(model_config.name)
    options = {
        "revision": model_config.revision,
        "trust_remote_code": model_config.trust_remote_code,
        "use_safetensors": True,
    }
    try:
        if has_custom_head(directory):
            encoder = AutoModel.from_pretrained(path, **options)
            return EncoderWithHead(encoder, saved_config, read_head_config(directory))
        model, loading_info = AutoModelForSequenceClassification.from_pretrained(
            path, config=saved_config, ignore_mismatched_sizes=True, output_loading_info=True, **options
        )
    except (OSError, ValueError) as err:
        raise model_not_found(model_config.name, err) from None
    # The adapter puts the trained head back; anything else left at random would be a damaged base model.
    report_fresh_weights(model, loading_info, model_config.name, head_restored=True)
    return model


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return " ".join(text.splitlines()[0].split())[:300] if text else type(err).__name__
