"""Full fine-tuning: every weight of the encoder and the head trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from distiltune.methods.base import Method, MethodConfig, register_method, trainer_search_space
from distiltune.modeling import load_classifier_from_dir
from distiltune.modeling.heads import EncoderWithHead, has_custom_head


class FullConfig(MethodConfig):
    name: ClassVar[str] = "full"
    default_lr: ClassVar[float] = 3e-5


def apply_full(model: nn.Module, config: FullConfig) -> nn.Module:
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model


def save_pretrained(model: nn.Module, directory: Path) -> None:
    """The whole model as safetensors (a transformers classifier, or ours with an MLP head)."""
    model.save_pretrained(directory, safe_serialization=True)


def load_pretrained(directory: Path, model_config: Any) -> nn.Module:
    if has_custom_head(directory):
        return EncoderWithHead.from_pretrained(directory)
    return load_classifier_from_dir(directory)


register_method(
    Method(
        "full",
        FullConfig,
        apply_full,
        save_pretrained,
        load_pretrained,
        description="All weights train.",
        search_space=trainer_search_space(1e-5, 1e-4),
    )
)
