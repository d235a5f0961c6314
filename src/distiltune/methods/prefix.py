"""Prefix tuning / P-tuning v2 (peft): trainable key/value prefixes on every attention layer, plus the head.

The encoder is frozen; the prefixes and the classification head train and are saved in the adapter (the head through
``modules_to_save``). Prefix tuning hands per-layer key/value prefixes to the encoder as ``past_key_values``. Only
encoders whose self-attention accepts them can run it: BERT, RoBERTa, XLM-R, ELECTRA and the BERT-based MiniLM do
in transformers 5; DistilBERT, DeBERTa, ALBERT and XLNet do not. :func:`unsupported_reason` says so from the
encoder's config before anything loads (``train`` stops at once, ``compare`` skips the run), and
:func:`apply_prefix` refuses a loaded model that does not, instead of a silent no-op.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from pydantic import Field
from torch import nn

from distiltune.errors import ConfigError
from distiltune.methods.adapters import ADAPTER_FILES, wrap
from distiltune.methods.base import Method, MethodConfig, register_method, trainer_search_space
from distiltune.methods.prompt import load_prompt, model_dimensions, save_prompt
from distiltune.modeling import encoder_class
from distiltune.modeling.heads import head_module_names


class PrefixConfig(MethodConfig):
    name: ClassVar[str] = "prefix"
    default_lr: ClassVar[float] = 1e-2
    """P-tuning v2 trains deep prompts at 5e-3 to 1e-2."""
    supports_custom_head: ClassVar[bool] = False

    num_virtual_tokens: int = Field(20, ge=1)
    """Number of key/value prefix vectors per layer."""
    projection: bool = False
    """Reparameterise the prefixes through a two-layer MLP (prefix tuning's trick; P-tuning v2 goes without)."""
    projection_hidden_size: int = Field(256, ge=1)
    """Hidden size of that MLP when ``projection`` is on."""

    def reserved_positions(self) -> int:
        return self.num_virtual_tokens


def supports_prefix(model: nn.Module) -> bool:
    """True when the encoder's forward takes ``past_key_values`` (its attention can prepend prefixes)."""
    encoder = getattr(model, "base_model", None)
    if encoder is None:
        return False
    return "past_key_values" in inspect.signature(encoder.forward).parameters


def unsupported_reason(encoder_config: Any, config: PrefixConfig | None = None) -> str | None:
    """Why prefix tuning cannot run on the encoder of ``encoder_config`` (None when it can), from the encoder class's
    signature: nothing is loaded. None too for architectures transformers does not know (remote code):
    :func:`apply_prefix` checks the loaded model then."""
    encoder = encoder_class(encoder_config)
    if encoder is None or "past_key_values" in inspect.signature(encoder.forward).parameters:
        return None
    return REFUSAL.format(model_type=getattr(encoder_config, "model_type", encoder.__name__))


#: The one-line reason a model without past_key_values cannot be prefix-tuned (what train and compare report).
REFUSAL = (
    "prefix tuning needs an encoder that takes past_key_values; '{model_type}' does not (use --method prompt or "
    "lora for this model, or prefix with BERT, RoBERTa, XLM-R, ELECTRA or MiniLM)"
)


def apply_prefix(model: nn.Module, config: PrefixConfig) -> nn.Module:
    from peft import PrefixTuningConfig, TaskType

    if not supports_prefix(model):
        model_type = getattr(model.config, "model_type", type(model).__name__)
        reason = REFUSAL.format(model_type=model_type)
        raise ConfigError(f"{reason[0].upper()}{reason[1:]}.")
    peft_config = PrefixTuningConfig(
        task_type=TaskType.SEQ_CLS,
        num_virtual_tokens=config.num_virtual_tokens,
        prefix_projection=config.projection,
        encoder_hidden_size=config.projection_hidden_size,
        modules_to_save=head_module_names(model),
        **model_dimensions(model),
    )
    return wrap(model, peft_config)


register_method(
    Method(
        "prefix",
        PrefixConfig,
        apply_prefix,
        save_prompt,
        load_prompt,
        description="Prefix tuning / P-tuning v2: trainable key/value prefixes on every layer, plus the head.",
        required_files=ADAPTER_FILES,
        unsupported_reason=unsupported_reason,
        search_space=trainer_search_space(
            1e-3, 5e-2, method_num_virtual_tokens={"type": "categorical", "choices": [5, 10, 20, 40]}
        ),
    )
)
