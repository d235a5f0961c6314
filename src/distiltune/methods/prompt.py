"""Soft prompt tuning (peft): trainable virtual tokens before the input embeddings, plus the head.

The encoder is frozen; the virtual tokens and the classification head train, and both are saved in the adapter
(the head through ``modules_to_save``, as for LoRA). Virtual tokens occupy position embeddings, so
:meth:`PromptConfig.reserved_positions` shortens the usable max length by their number. Prefix tuning, the deep
variant, is :mod:`distiltune.methods.prefix`.

Prompt tuning refuses XLNet (:func:`prompt_unsupported_reason`): XLNet pads on the left, so the padding sits between
the prepended prompt and the text, and XLNet's relative positions make every prediction depend on how much padding
its batch needed (a text's probability moved by 0.06 between scoring it alone and in a batch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator
from torch import nn

from distiltune.errors import ConfigError
from distiltune.methods.adapters import ADAPTER_FILES, load_adapter, save_adapter, wrap
from distiltune.methods.base import Method, MethodConfig, register_method, trainer_search_space
from distiltune.modeling.heads import head_module_names

PromptInit = Literal["text", "vocab", "random"]


class PromptConfig(MethodConfig):
    name: ClassVar[str] = "prompt"
    default_lr: ClassVar[float] = 1e-2
    """Soft prompts live in embedding space and start far from useful: they need a large step size."""
    supports_custom_head: ClassVar[bool] = False

    num_virtual_tokens: int = Field(20, ge=1)
    """Number of trainable prompt vectors prepended to the input embeddings."""
    init: PromptInit = "text"
    """Initialise the prompt from the embeddings of ``init_text`` (text), of random vocabulary tokens (vocab),
    or randomly (random)."""
    init_text: str = "Classify the following text:"
    """Text whose token embeddings initialise the prompt when ``init`` is text (repeated to fill the tokens)."""

    @model_validator(mode="after")
    def _check(self) -> PromptConfig:
        if self.init == "text" and not self.init_text.strip():
            raise ConfigError("method.init_text is empty.", "Give a text, or use --set method.init=random.")
        return self

    def reserved_positions(self) -> int:
        return self.num_virtual_tokens


def model_dimensions(model: nn.Module) -> dict[str, int]:
    # peft looks for hidden_size/num_attention_heads in the config dict, which misses DistilBERT's dim/n_heads
    # (exposed only through attribute aliases): pass them explicitly.
    config = model.config
    return {
        "token_dim": config.hidden_size,
        "num_attention_heads": config.num_attention_heads,
        "num_layers": config.num_hidden_layers,
    }


#: Encoders whose tokenizers pad on the left while their attention sees relative distances: padding would separate
#: the soft prompt from the text by a different distance in every batch.
LEFT_PADDED_MODEL_TYPES = ("xlnet",)


def prompt_unsupported_reason(encoder_config: Any, config: PromptConfig | None = None) -> str | None:
    """Why prompt tuning cannot train this encoder (left padding between the prompt and the text), or None."""
    model_type = getattr(encoder_config, "model_type", "")
    if model_type not in LEFT_PADDED_MODEL_TYPES:
        return None
    return (
        f"prompt tuning cannot train model type '{model_type}': it pads on the left, so the padding between the soft "
        "prompt and the text, and with it every prediction, would change from batch to batch; use --method lora, "
        "full or head for this model"
    )


def apply_prompt(model: nn.Module, config: PromptConfig) -> nn.Module:
    from peft import PromptTuningConfig, PromptTuningInit, TaskType

    reason = prompt_unsupported_reason(model.config, config)
    if reason is not None:
        raise ConfigError(f"{reason[0].upper()}{reason[1:]}.")

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
        **model_dimensions(model),
        **options,
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


register_method(
    Method(
        "prompt",
        PromptConfig,
        apply_prompt,
        save_prompt,
        load_prompt,
        description="Soft prompt tuning: trainable virtual tokens before the input, plus the head.",
        required_files=ADAPTER_FILES,
        unsupported_reason=prompt_unsupported_reason,
        search_space=trainer_search_space(
            1e-3, 5e-2, method_num_virtual_tokens={"type": "categorical", "choices": [5, 10, 20, 40]}
        ),
    )
)
