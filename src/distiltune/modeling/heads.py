"""Our own classification head (``--head mlp --pooling cls|mean``) on top of any Hugging Face encoder.

:class:`EncoderWithHead` wraps the bare encoder of a loaded ``AutoModelForSequenceClassification`` (its
``base_model``) and replaces the built-in head with :class:`MLPHead`. It looks like a transformers classifier
to the rest of distiltune (``.config`` with the label maps, ``forward(...) -> .logits/.loss``), trains with
every method that keeps the encoder intact (full, lora, head), and saves as ``model.safetensors`` +
``config.json`` (the encoder's) + ``head_config.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from distiltune.errors import ConfigError, RunError

HEAD_CONFIG_FILE = "head_config.json"
Pooling = Literal["cls", "mean"]
SummaryPosition = Literal["first", "last"]


@dataclass
class HeadConfig:
    """Options of the MLP head (mirrors the ``model.head*`` / ``model.pooling`` config keys)."""

    pooling: Pooling = "cls"
    hidden_size: int | None = None
    dropout: float = 0.1

    def validate(self) -> None:
        if self.pooling not in ("cls", "mean"):
            raise ConfigError(f"model.pooling must be cls or mean, got '{self.pooling}'.")
        if self.hidden_size is not None and self.hidden_size < 1:
            raise ConfigError(f"model.head_hidden_size must be >= 1, got {self.hidden_size}.")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.head_dropout must be in [0, 1), got {self.dropout}.")


class MLPHead(nn.Module):
    """Pool the token states, then dropout -> Linear -> GELU -> dropout -> Linear to the labels.

    ``summary_position`` is where the encoder puts its summary ([CLS]) token, which ``cls`` pooling reads.
    """

    def __init__(
        self, input_size: int, num_labels: int, config: HeadConfig, summary_position: SummaryPosition = "first"
    ) -> None:
        super().__init__()
        hidden = config.hidden_size or input_size
        self.pooling = config.pooling
        self.summary_position = summary_position
        self.dropout = nn.Dropout(config.dropout)
        self.dense = nn.Linear(input_size, hidden)
        self.activation = nn.GELU()
        self.out_proj = nn.Linear(hidden, num_labels)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        pooled = pool(hidden_states, attention_mask, self.pooling, self.summary_position)
        hidden = self.activation(self.dense(self.dropout(pooled)))
        return self.out_proj(self.dropout(hidden))


def pool(
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None,
    pooling: str,
    summary_position: SummaryPosition = "first",
) -> torch.Tensor:
    """The summary token's state (``cls``), or the mean over real tokens (``mean``, padding excluded).

    The summary token is the first token, or with ``summary_position="last"`` (XLNet) the last real one: the
    last column when padding is on the left, as XLNet's tokenizer pads, else the last position the mask keeps.
    """
    if pooling == "cls":
        if summary_position == "first":
            return hidden_states[:, 0]
        if attention_mask is None:
            return hidden_states[:, -1]
        mask = attention_mask[:, : hidden_states.shape[1]]
        positions = torch.arange(mask.shape[1], device=mask.device)
        last = (mask.to(positions.dtype) * positions).argmax(dim=1)
        return hidden_states[torch.arange(hidden_states.shape[0], device=hidden_states.device), last]
    if attention_mask is None:
        return hidden_states.mean(dim=1)
    mask = attention_mask[:, : hidden_states.shape[1]].unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class EncoderWithHead(nn.Module):
    """A bare encoder plus :class:`MLPHead`, with the interface distiltune expects from a classifier."""

    # The Trainer and peft look these up on models; the encoder is the part LoRA targets and `head` freezes.
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = False

    def __init__(self, encoder: nn.Module, config: Any, head_config: HeadConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = config
        self.head_config = head_config
        self.head = MLPHead(config.hidden_size, config.num_labels, head_config, summary_position(config))

    @property
    def base_model(self) -> nn.Module:
        return self.encoder

    @property
    def name_or_path(self) -> str:
        return getattr(self.config, "_name_or_path", "")

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        from transformers.modeling_outputs import SequenceClassifierOutput

        encoder_inputs: dict[str, Any] = {"attention_mask": attention_mask}
        if input_ids is not None:
            encoder_inputs["input_ids"] = input_ids
        if inputs_embeds is not None:
            encoder_inputs["inputs_embeds"] = inputs_embeds
        if token_type_ids is not None:
            encoder_inputs["token_type_ids"] = token_type_ids
        # The Trainer passes e.g. num_items_in_batch: the encoder does not take it.
        hidden_states = self.encoder(**encoder_inputs).last_hidden_state
        logits = self.head(hidden_states, attention_mask)
        loss = None
        if labels is not None and getattr(self.config, "problem_type", None) == "multi_label_classification":
            loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float().view_as(logits))
        elif labels is not None:
            loss = nn.functional.cross_entropy(logits.view(-1, self.config.num_labels).float(), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)

    # --- saving and loading (safetensors only) -------------------------------------------------

    def save_pretrained(self, directory: str | Path, **_: Any) -> None:
        from safetensors.torch import save_model

        self.save_architecture(directory)
        save_model(self, str(Path(directory) / "model.safetensors"))

    def save_architecture(self, directory: str | Path) -> None:
        """config.json (encoder + label maps) and head_config.json: enough to rebuild the module."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.save_pretrained(directory)
        (directory / HEAD_CONFIG_FILE).write_text(json.dumps(asdict(self.head_config), indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> EncoderWithHead:
        from safetensors.torch import load_model

        model = cls.from_config_dir(directory)
        missing, unexpected = load_model(model, str(Path(directory) / "model.safetensors"), strict=False)
        # Some classifiers build their encoder without the (unused) pooler, which AutoModel adds back.
        missing = [key for key in missing if not key.startswith("encoder.pooler.")]
        if missing or unexpected:
            raise RunError(f"{directory}: weights do not match the saved architecture ({(missing + unexpected)[:3]}).")
        return model

    @classmethod
    def from_config_dir(cls, directory: str | Path) -> EncoderWithHead:
        """The architecture saved in ``directory`` with untrained weights (to load a state dict into)."""
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(str(directory))
        encoder = AutoModel.from_config(config)
        return cls(encoder, config, read_head_config(directory))


def summary_position(config: Any) -> SummaryPosition:
    """Where an architecture's summary token sits: XLNet appends ``<sep> <cls>`` and its own head reads the last
    token (``summary_type: last``); BERT-style encoders put [CLS] first."""
    return "last" if getattr(config, "summary_type", None) == "last" else "first"


def has_custom_head(directory: str | Path) -> bool:
    return (Path(directory) / HEAD_CONFIG_FILE).is_file()


def read_head_config(directory: str | Path) -> HeadConfig:
    head_file = Path(directory) / HEAD_CONFIG_FILE
    if not head_file.is_file():
        raise RunError(f"{directory} has no {HEAD_CONFIG_FILE}: it was not saved with an MLP head.")
    return HeadConfig(**json.loads(head_file.read_text()))


def head_config_from_model_config(model_config: Any) -> HeadConfig:
    return HeadConfig(
        pooling=model_config.pooling,
        hidden_size=model_config.head_hidden_size,
        dropout=model_config.head_dropout,
    )


def attach_head(model: nn.Module, model_config: Any) -> nn.Module:
    """Swap the built-in head of a loaded classifier for ours when ``model.head`` is ``mlp``."""
    if model_config.head == "auto":
        return model
    head_config = head_config_from_model_config(model_config)
    head_config.validate()
    return EncoderWithHead(model.base_model, model.config, head_config)


def head_module_names(model: nn.Module) -> list[str]:
    """Top-level modules that form the classification head: every child with weights except the encoder.

    This covers DistilBERT's ``pre_classifier`` + ``classifier``, RoBERTa's ``classifier`` (dense + out_proj),
    DeBERTa-v2's ``pooler`` + ``classifier``, XLNet's ``sequence_summary`` + ``logits_proj`` and our ``head``.
    """
    base_name = getattr(model, "base_model_prefix", "")
    return [
        name for name, child in model.named_children() if name != base_name and any(True for _ in child.parameters())
    ]


__all__ = [
    "EncoderWithHead",
    "HeadConfig",
    "MLPHead",
    "attach_head",
    "has_custom_head",
    "head_module_names",
    "pool",
    "summary_position",
]
