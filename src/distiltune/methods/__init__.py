"""Tuning methods. Each method is one module that ends with its own ``register_method`` call (peft's pattern);
importing this package imports them all, so the registry is complete.

Adding a method: one file here (a ``MethodConfig`` subclass and the hooks of :class:`~distiltune.methods.base.Method`,
ending with ``register_method(...)``), its import below, and its section in docs/methods.md.
"""

from __future__ import annotations

# Registration happens on import, in this order: the registry's, which is compare's default line-up and table order.
from distiltune.methods import full, head, lora, prefix, prompt, tfidf, untuned  # noqa: E402, F401, I001
from distiltune.methods.base import (
    METHODS,
    FittedModel,
    Method,
    MethodConfig,
    Predictor,
    count_parameters,
    default_compare_methods,
    get_method,
    get_method_config_class,
    method_names,
    register_method,
    trainer_search_space,
)

__all__ = [
    "METHODS",
    "FittedModel",
    "Method",
    "MethodConfig",
    "Predictor",
    "count_parameters",
    "default_compare_methods",
    "get_method",
    "get_method_config_class",
    "method_names",
    "register_method",
    "trainer_search_space",
]
