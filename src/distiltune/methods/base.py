"""The contract every tuning method follows.

A method is a config dataclass (its options, with defaults) plus functions that turn a freshly loaded
encoder into the model that trains, and that save/reload the trained model. Methods register themselves
in :mod:`distiltune.methods` with :func:`register_method`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from torch import nn


@dataclass
class MethodConfig:
    """Options of one tuning method; subclasses add their own fields."""

    name: ClassVar[str] = ""
    default_lr: ClassVar[float] = 3e-5
    """The learning rate used when ``train.lr`` is unset: each method has its own sweet spot."""

    supports_custom_head: ClassVar[bool] = True
    """False where the method cannot run with ``--head mlp`` (prompt/prefix rely on peft's built-in heads)."""

    def validate(self) -> None:
        """Raise ConfigError on inconsistent options."""

    def reserved_positions(self) -> int:
        """Position embeddings the method uses itself (virtual tokens), taken from the usable max length."""
        return 0


@dataclass(frozen=True)
class Method:
    """A registered tuning method."""

    name: str
    config_cls: type[MethodConfig]
    apply: Callable[[nn.Module, Any], nn.Module]
    """Turn the freshly loaded encoder into the model to train (freeze, wrap in PEFT, ...)."""
    save: Callable[[nn.Module, Path], None]
    """Write the trained model into a run's ``model/`` folder (safetensors only)."""
    load: Callable[[Path, Any], nn.Module]
    """Rebuild the trained model from ``model/`` (the second argument is the resolved ModelConfig)."""
    trains: bool = True
    """False for baselines that are evaluated without an optimizer step."""
    description: str = ""
    required_files: tuple[str, ...] = ()
    """Files besides config.json/labels.json/tokenizer that ``model/`` must hold (checked before loading)."""
    export: Callable[[nn.Module, Path, Any], None] | None = None
    """Optional extra outputs written after ``save`` and the tokenizer, e.g. LoRA's merged model
    (arguments: the trained model, ``model/``, the method config)."""


def count_parameters(model: nn.Module) -> dict[str, float]:
    """Trainable and total parameter counts, and the trainable share in percent.

    peft keeps a frozen copy of each ``modules_to_save`` module (``original_module``) beside the trained one; it
    is not part of the model that predicts, so it is not counted.
    """
    parameters = [p for name, p in model.named_parameters() if ".original_module." not in name]
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    total = sum(p.numel() for p in parameters)
    return {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_percent": round(100.0 * trainable / total, 4) if total else 0.0,
    }
