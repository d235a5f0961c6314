"""Soft prompts (peft): prompt tuning on the input only, and prefix tuning (deep prompts, P-tuning v2).

Both freeze the encoder; the virtual tokens and the classification head train, and both are saved in the
adapter (the head through ``modules_to_save``, as for LoRA). Virtual tokens occupy position embeddings, so
:meth:`reserved_positions` shortens the usable max length by their number.

Prefix tuning hands per-layer key/value prefixes to the encoder as ``past_key_values``. Only encoders whose
self-attention accepts them can run it: BERT, RoBERTa, XLM-R, ELECTRA and the BERT-based MiniLM do in
transformers 5; DistilBERT, DeBERTa, ALBERT and XLNet do not, and get a ConfigError instead of a silent no-op.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from torch import nn

from distiltune.errors import ConfigError
from distiltune.heads import head_module_names
from distiltune.methods.adapters import load_adapter, save_adapter, wrap
from distiltune.methods.base import MethodConfig

PromptInit = Literal["text", "vocab", "random"]


@dataclass
class PromptConfig(MethodConfig):
    name: ClassVar[str] = "prompt"
    default_lr: ClassVar[float] = 1e-2
    """Soft prompts live in embedding space and start far from useful: they need a large step size."""
    supports_custom_head: ClassVar[bool] = False

    num_virtual_tokens: int = 20
    """Number of trainable prompt vectors prepended to the input embeddings."""
    init: PromptInit = "text"
    """Initialise the prompt from the embeddings of ``init_text`` (text), of random vocabulary tokens (vocab),
    or randomly (random)."""
    init_text: str = "Classify the following text:"
    """Text whose token embeddings initialise the prompt when ``init`` is text (repeated to fill the tokens)."""

    def validate(self) -> None:
        if self.num_virtual_tokens < 1:
            raise ConfigError(f"method.num_virtual_tokens must be >= 1, got {self.num_virtual_tokens}.")
        if self.init == "text" and not self.init_text.strip():
            raise ConfigError("method.init_text is empty.", "Give a text, or use --set method.init=random.")

    def reserved_positions(self) -> int:
        return self.num_virtual_tokens


@dataclass
class PrefixConfig(MethodConfig):
    name: ClassVar[str] = "prefix"
    default_lr: ClassVar[float] = 1e-2
    """P-tuning v2 trains deep prompts at 5e-3 to 1e-2."""
    supports_custom_head: ClassVar[bool] = False

    num_virtual_tokens: int = 20
    """Number of key/value prefix vectors per layer."""
    projection: bool = False
    """Reparameterise the prefixes through a two-layer MLP (prefix tuning's trick; P-tuning v2 goes without)."""
    projection_hidden_size: int = 256
    """Hidden size of that MLP when ``projection`` is on."""

    def validate(self) -> None:
        if self.num_virtual_tokens < 1:
            raise ConfigError(f"method.num_virtual_tokens must be >= 1, got {self.num_virtual_tokens}.")
        if self.projection_hidden_size < 1:
            raise ConfigError(f"method.projection_hidden_size must be >= 1, got {self.projection_hidden_size}.")

    def reserved_positions(self) -> int:
        return self.num_virtual_tokens


def _model_dimensions(model: nn.Module) -> dict[str, int]:
    # peft looks for hidden_size/num_attention_heads in the config dict, which misses DistilBERT's dim/n_heads
    # (exposed only through attribute aliases): pass them explicitly.
    config = model.config
    return {
        "token_dim": config.hidden_size,
        "num_attention_heads": config.num_attention_heads,
        "num_layers": config.num_hidden_layers,
    }


def apply_prompt(model: nn.Module, config: PromptConfig) -> nn.Module:
    from peft import PromptTuningConfig, PromptTuningInit, TaskType

    init = {"text": PromptTuningInit.TEXT, "vocab": PromptTuningInit.SAMPLE_VOCAB, "random": PromptTuningInit.RANDOM}
    options: dict[str, Any] = {}
    if config.init == "text":
        # The encoder was loaded from this path (hub id, directory or resolved alias); its tokenizer sits beside it.
        options = {"prompt_tuning_init_text": config.init_text, "tokenizer_name_or_path": model.name_or_path}
    peft_config = PromptTuningConfig(
        task_type=TaskType.SEQ_CLS,
        num_virtual_tokens=config.num_virtual_tokens,
        prompt_tuning_init=init[config.init],
        modules_to_save=head_module_names(model),
        **_model_dimensions(model),
        **options,
    )
    return wrap(model, peft_config)


def supports_prefix(model: nn.Module) -> bool:
    """True when the encoder's forward takes ``past_key_values`` (its attention can prepend prefixes)."""
    encoder = getattr(model, "base_model", None)
    if encoder is None:
        return False
    return "past_key_values" in inspect.signature(encoder.forward).parameters


def apply_prefix(model: nn.Module, config: PrefixConfig) -> nn.Module:
    from peft import PrefixTuningConfig, TaskType

    if not supports_prefix(model):
        model_type = getattr(model.config, "model_type", type(model).__name__)
        raise ConfigError(
            f"Prefix tuning needs an encoder that accepts past_key_values; '{model_type}' does not.",
            "It works with BERT, RoBERTa, XLM-R, ELECTRA and MiniLM (e.g. --model minilm); use --method prompt or "
            "lora for this model.",
        )
    peft_config = PrefixTuningConfig(
        task_type=TaskType.SEQ_CLS,
        num_virtual_tokens=config.num_virtual_tokens,
        prefix_projection=config.projection,
        encoder_hidden_size=config.projection_hidden_size,
        modules_to_save=head_module_names(model),
        **_model_dimensions(model),
    )
    return wrap(model, peft_config)


def save_prompt(model: nn.Module, directory: Path) -> None:
    save_adapter(model, directory)


def load_prompt(directory: Path, model_config: Any) -> nn.Module:
    from peft import PeftConfig, PromptTuningInit

    peft_config = PeftConfig.from_pretrained(str(directory))
    if getattr(peft_config, "prompt_tuning_init", None) is not None:
        # The saved prompt replaces the initial one: skip re-reading the init text's tokenizer.
        peft_config.prompt_tuning_init = PromptTuningInit.RANDOM
    peft_config.inference_mode = True
    return load_adapter(directory, model_config, peft_config)
