"""Registry of tuning methods: each method module registers itself here (peft's pattern)."""

from __future__ import annotations

import difflib

from distiltune.errors import ConfigError
from distiltune.methods.base import Method, MethodConfig, count_parameters

METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    if method.name != method.name.lower() or method.name in METHODS:
        raise ValueError(f"Method names must be lower-case and unique: {method.name!r}")
    if method.config_cls.name != method.name:
        raise ValueError(f"{method.config_cls.__name__}.name must be {method.name!r}")
    METHODS[method.name] = method
    return method


def method_names() -> list[str]:
    return list(METHODS)


def get_method(name: str) -> Method:
    if name not in METHODS:
        close = difflib.get_close_matches(name, METHODS, n=1, cutoff=0.5)
        hint = f"Did you mean '{close[0]}'?" if close else f"Choose one of: {', '.join(METHODS)}."
        raise ConfigError(f"Unknown method '{name}'.", hint)
    return METHODS[name]


def get_method_config_class(name: str) -> type[MethodConfig]:
    return get_method(name).config_cls


def _register_builtin_methods() -> None:
    from distiltune.methods import full

    register_method(
        Method(
            "full",
            full.FullConfig,
            full.apply_full,
            full.save_pretrained,
            full.load_pretrained,
            description="All weights train.",
        )
    )


_register_builtin_methods()


def _register_baselines() -> None:
    from distiltune.baselines import baseline_methods

    for method in baseline_methods():
        register_method(method)


_register_baselines()

__all__ = ["METHODS", "Method", "MethodConfig", "count_parameters", "get_method", "method_names", "register_method"]
