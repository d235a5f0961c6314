"""Linear probe: the encoder is frozen and only the classification head trains.

The head is every top-level module except the encoder (DistilBERT's ``pre_classifier`` + ``classifier``,
BERT's ``classifier``, our MLP head...). Encoder weights stay bit-identical to the pretrained ones. The run
saves the whole model, so it reloads without the base model.
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from distiltune.errors import ConfigError
from distiltune.methods.base import Method, MethodConfig, register_method, trainer_search_space
from distiltune.methods.full import load_pretrained, save_pretrained
from distiltune.modeling.heads import head_module_names


class HeadOnlyConfig(MethodConfig):
    name: ClassVar[str] = "head"
    default_lr: ClassVar[float] = 1e-3
    """A freshly initialised head on frozen features takes a large step size (1e-3, as for a logistic probe)."""


def apply_head_only(model: nn.Module, config: HeadOnlyConfig) -> nn.Module:
    heads = head_module_names(model)
    if not heads:
        raise ConfigError(f"Cannot find the classification head of {type(model).__name__} to train on its own.")
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for name in heads:
        for parameter in model.get_submodule(name).parameters():
            parameter.requires_grad_(True)
    return model


register_method(
    Method(
        "head",
        HeadOnlyConfig,
        apply_head_only,
        save_pretrained,
        load_pretrained,
        description="Linear probe: the encoder is frozen, only the classification head trains.",
        search_space=trainer_search_space(1e-4, 1e-2),
    )
)
