"""The untuned baseline: the pretrained encoder with a freshly initialised head, evaluated without training.

It writes the same run directory as the tuning methods (its model saves and reloads like full fine-tuning), so
``--method untuned`` works wherever a method name does and ``compare`` puts it in the table as the floor every
tuning method has to clear.
"""

from __future__ import annotations

from typing import Any, ClassVar

from distiltune.methods.base import Method, MethodConfig, register_method
from distiltune.methods.full import load_pretrained, save_pretrained


class UntunedConfig(MethodConfig):
    """The encoder exactly as every other method starts from it: the pretrained weights plus a freshly
    initialised classification head (seeded by ``train.seed``), evaluated without a single optimizer step."""

    name: ClassVar[str] = "untuned"


def apply_untuned(model: Any, config: UntunedConfig) -> Any:
    # Nothing trains, and the parameter count says so (0 trainable). Training never calls the optimizer for a
    # method with ``trains=False``.
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


register_method(
    Method(
        "untuned",
        UntunedConfig,
        apply_untuned,
        save_pretrained,
        load_pretrained,
        trains=False,
        description="Baseline: pretrained encoder + fresh head, evaluated without training.",
    )
)
