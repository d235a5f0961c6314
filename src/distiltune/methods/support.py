"""Which method can train which encoder, decided from the encoder's ``config.json`` before anything loads.

A method that cannot train an architecture (prefix tuning on an encoder without ``past_key_values``, prompt tuning
on a left-padded one, LoRA on a family with no known attention projections) says so here, as one line, before a run
directory exists or a weight is read: :func:`require_support` raises it as a ConfigError for ``train``, and
:func:`unsupported_reason` returns it so that ``compare`` can skip the method with the reason instead of failing
mid-comparison.
"""

from __future__ import annotations

from typing import Any

from distiltune.errors import ConfigError, ModelError
from distiltune.methods.base import get_method
from distiltune.modeling import load_encoder_config


def unsupported_reason(method_config: Any, model_config: Any) -> str | None:
    """Why the method of ``method_config`` cannot train the encoder of ``model_config`` (the ``model`` section:
    ``name``, ``revision``, ``trust_remote_code``), or None when it can.

    None too when the encoder's config cannot be read here (unknown name, offline): loading the model then reports
    that with its own error.
    """
    method = get_method(method_config.name)
    if method.unsupported_reason is None:
        return None
    encoder_config = read_encoder_config(model_config)
    if encoder_config is None:
        return None
    return method.refusal(encoder_config, method_config)


def require_support(method_config: Any, model_config: Any) -> None:
    """Raise :func:`unsupported_reason` as a one-line ConfigError."""
    reason = unsupported_reason(method_config, model_config)
    if reason is not None:
        raise ConfigError(reason[0].upper() + reason[1:] + ("" if reason.endswith(".") else "."))


def read_encoder_config(model_config: Any) -> Any | None:
    """The transformers config of ``model_config.name`` (hub id, directory or alias), or None if unreadable."""
    try:
        return load_encoder_config(model_config.name, model_config.revision, model_config.trust_remote_code)
    except (OSError, ValueError, KeyError, ModelError):
        return None


__all__ = ["read_encoder_config", "require_support", "unsupported_reason"]
