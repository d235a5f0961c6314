"""LoRA (peft): low-rank updates on the attention projections; the classification head trains in full.

Target modules come from :data:`LORA_TARGET_MODULES` (peft's own table plus the families it lacks, DistilBERT
first among them). The head, found by :func:`~distiltune.modeling.heads.head_module_names`, goes into peft's
``modules_to_save``: peft only adds ``classifier``/``score`` by itself, which leaves DistilBERT's randomly
initialised ``pre_classifier`` frozen and unsaved, so a reloaded model would predict at random.
``merge: true`` also writes ``model/merged/``, a plain transformers model with the update folded in.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator
from torch import nn

from distiltune.errors import ConfigError
from distiltune.methods.adapters import ADAPTER_FILES, load_adapter, save_adapter, wrap
from distiltune.methods.base import Method, MethodConfig, register_method, trainer_search_space
from distiltune.modeling.heads import EncoderWithHead, head_module_names
from distiltune.schema import CommaList

logger = logging.getLogger("distiltune")

MERGED_DIR = "merged"

#: Attention projections LoRA adapts, per ``config.model_type``: peft's table, plus families it has no entry for.
LORA_TARGET_MODULES: dict[str, list[str]] = {
    "distilbert": ["q_lin", "v_lin"],
    "albert": ["query", "value"],
    "camembert": ["query", "value"],
    "mpnet": ["q", "v"],
    # XLNet's attention projections q/k/v/o are bare 3-d Parameters used in einsums, not Linear layers. peft's
    # ``target_parameters`` (0.21) takes a 3-d Parameter for a stack of MoE experts, which these are not, and it
    # refuses lora_dropout: adapt the feed-forward Linears instead (ff.layer_1/layer_2 are the only such names).
    "xlnet": ["layer_1", "layer_2"],
    "longformer": ["query", "value"],
    "ernie": ["query", "value"],
    "modernbert": ["Wqkv"],
}


class LoraMethodConfig(MethodConfig):
    name: ClassVar[str] = "lora"
    default_lr: ClassVar[float] = 2e-3
    """Low-rank updates start at zero and a short run must move them far: measured in docs/methods.md."""

    r: int = Field(8, ge=1)
    """Rank of the low-rank update matrices."""
    alpha: int = Field(16, gt=0)
    """Scaling numerator: the update is multiplied by alpha / r."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """Dropout on the LoRA branch's input."""
    target_modules: CommaList | None = None
    """Module names to adapt; unset picks the architecture's attention projections (q_lin/v_lin, query/value...)."""
    merge: bool = False
    """Also write model/merged/: the update folded into the weights, loadable with plain transformers."""

    @field_validator("target_modules")
    @classmethod
    def _named(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ConfigError("method.target_modules is empty.", "Leave it unset to auto-detect, or name modules.")
        return value


def target_modules_for(model: nn.Module) -> list[str]:
    model_type = getattr(model.config, "model_type", "")
    targets = default_target_modules(model_type)
    if targets is None:
        raise ConfigError(_no_targets(model_type))
    return targets


def default_target_modules(model_type: str) -> list[str] | None:
    """The modules LoRA adapts by default for a ``config.model_type``: ours, else peft's table; None if neither."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

    targets = LORA_TARGET_MODULES.get(model_type) or PEFT_TARGETS.get(model_type)
    return list(targets) if targets and isinstance(targets, list) else None


def lora_unsupported_reason(encoder_config: Any, config: LoraMethodConfig | None = None) -> str | None:
    """Why LoRA cannot start on this encoder: no target modules were named and none are known for its type."""
    model_type = getattr(encoder_config, "model_type", "")
    if (config is not None and config.target_modules) or default_target_modules(model_type) is not None:
        return None
    return _no_targets(model_type)


def _no_targets(model_type: str) -> str:
    return (
        f"lora has no default target modules for model type '{model_type}'; name its attention projections: "
        "--set method.target_modules=[query,value]"
    )


def apply_lora(model: nn.Module, config: LoraMethodConfig) -> nn.Module:
    from peft import LoraConfig, TaskType

    targets = config.target_modules or target_modules_for(model)
    peft_config = LoraConfig(
        # Our MLP head is not a transformers class: peft wraps it as a plain model.
        task_type=None if isinstance(model, EncoderWithHead) else TaskType.SEQ_CLS,
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=targets,
        modules_to_save=head_module_names(model),
    )
    return wrap(model, peft_config)


def save_lora(model: nn.Module, directory: Path) -> None:
    save_adapter(model, directory)


def load_lora(directory: Path, model_config: Any) -> nn.Module:
    return load_adapter(directory, model_config)


def merged_model(model: nn.Module) -> nn.Module:
    """A copy of the trained PEFT model with the LoRA update folded into the weights (no adapter overhead)."""
    return copy.deepcopy(model).merge_and_unload()


def export_merged(model: nn.Module, directory: Path, config: LoraMethodConfig) -> None:
    """With ``merge: true``, write model/merged/: weights, config and tokenizer, loadable with plain transformers
    (``AutoModelForSequenceClassification.from_pretrained``), or with EncoderWithHead for an MLP head."""
    if not config.merge:
        return
    from transformers import AutoTokenizer

    target = directory / MERGED_DIR
    merged_model(model).save_pretrained(target, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(directory)).save_pretrained(target)
    logger.info("Wrote the merged LoRA model to %s", target)


register_method(
    Method(
        "lora",
        LoraMethodConfig,
        apply_lora,
        save_lora,
        load_lora,
        description="LoRA adapters on the attention projections; the head trains in full.",
        required_files=ADAPTER_FILES,
        export=export_merged,
        unsupported_reason=lora_unsupported_reason,
        search_space=trainer_search_space(
            1e-4,
            5e-3,
            method_r={"type": "categorical", "choices": [4, 8, 16, 32]},
            method_alpha={"type": "categorical", "choices": [8, 16, 32, 64]},
        ),
    )
)
