"""The contract every tuning method follows, and the registry the methods add themselves to.

A method is a config model (its options, with defaults: a :class:`MethodConfig`) plus hooks. Methods that train
through the Hugging Face ``Trainer`` give ``apply`` (turn a freshly loaded encoder into the model that trains),
``save`` and ``load``. A method that trains outside the Trainer gives ``fit`` and ``load_predictor`` instead,
whether it has an encoder or not (``uses_encoder``: the TF-IDF baseline has none). Each method also owns its facts:
its default search space for ``tune`` and whether it joins ``compare``'s default line-up. Each method's module ends
with its own :func:`register_method` call (peft's pattern); ``distiltune.methods`` imports them all. Nothing outside
``methods/`` asks which method a run used: it asks the :class:`Method` for what it can do.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from distiltune.errors import ConfigError
from distiltune.schema import ConfigModel

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn


class MethodConfig(ConfigModel):
    """Options of one tuning method (the ``method`` section, less its ``name``); subclasses add their own fields
    and validate them in the model."""

    section: ClassVar[str] = "method"
    name: ClassVar[str] = ""
    default_lr: ClassVar[float] = 3e-5
    """The learning rate used when ``train.lr`` is unset: each method has its own sweet spot."""

    supports_custom_head: ClassVar[bool] = True
    """False where the method cannot run with ``--head mlp`` (prompt/prefix rely on peft's built-in heads)."""

    @classmethod
    def unknown_key_error(cls, key: str, prefix: str) -> ConfigError:
        """An option this method does not have: the method that has it (``--merge`` belongs to lora), else the
        closest option this one has, else that it has none."""
        owners = [method.name for method in METHODS.values() if key in method.config_cls.model_fields]
        if owners:
            return ConfigError(
                f"{prefix}method.{key} is an option of {_methods_named(owners)}, not {cls.name}.",
                f"Add --method {owners[0]} (method.name: {owners[0]} in a config file), or leave method.{key} out.",
            )
        allowed = list(cls.model_fields)
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
        if close:
            hint = f"Did you mean '{close[0]}'?"
        elif allowed:
            hint = f"Method {cls.name} takes: {', '.join(allowed)}."
        else:
            hint = f"Method {cls.name} has no options."
        return ConfigError(f"{prefix}method: unknown key '{key}'.", hint)

    def reserved_positions(self) -> int:
        """Position embeddings the method uses itself (virtual tokens), taken from the usable max length."""
        return 0


def _methods_named(names: list[str]) -> str:
    return f"method {names[0]}" if len(names) == 1 else f"methods {', '.join(names[:-1])} and {names[-1]}"


class Predictor(Protocol):
    """What a method without an encoder hands back for prediction: logits for texts (and pairs), in input order."""

    def predict_logits(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray: ...


class FittedModel(Predictor, Protocol):
    """A model fitted by a method's ``fit`` hook: it predicts, saves itself into ``model/`` and describes itself."""

    def save(self, directory: Path) -> None: ...

    def run_facts(self) -> dict[str, Any]:
        """Extra ``metrics.json`` entries (parameter counts, features, device, precision)."""
        ...

    def environment(self) -> dict[str, Any]:
        """What ``env.json`` records for this run (library versions, device)."""
        ...


@dataclass(frozen=True)
class Method:
    """A registered tuning method."""

    name: str
    config_cls: type[MethodConfig]
    apply: Callable[[nn.Module, Any], nn.Module] | None = None
    """Turn the freshly loaded encoder into the model to train (freeze, wrap in PEFT, ...)."""
    save: Callable[[nn.Module, Path], None] | None = None
    """Write the trained model into a run's ``model/`` folder (safetensors only)."""
    load: Callable[[Path, Any], nn.Module] | None = None
    """Rebuild the trained model from ``model/`` (the second argument is the resolved ModelConfig)."""
    trains: bool = True
    """False for baselines that are evaluated without an optimizer step."""
    description: str = ""
    required_files: tuple[str, ...] = ()
    """Files besides config.json/labels.json/tokenizer that ``model/`` must hold (checked before loading)."""
    export: Callable[[nn.Module, Path, Any], None] | None = None
    """Optional extra outputs written after ``save`` and the tokenizer, e.g. LoRA's merged model
    (arguments: the trained model, ``model/``, the method config)."""
    unsupported_reason: Callable[[Any, Any], str | None] | None = None
    """Given the encoder's transformers config and the method config, why this method cannot run on it, as one line
    naming the method, the model type and what to use instead (None: it can). Asked from config.json alone before
    anything loads or trains (:mod:`distiltune.methods.support`), so ``train`` fails at once and ``compare`` skips
    the run with the reason."""
    fit: Callable[[pd.DataFrame, int, Any, int], FittedModel] | None = None
    """For methods outside the Trainer: fit on the training frame (text[, text_pair], label), given the number of
    labels, the method config and the seed."""
    load_predictor: Callable[[Path], Predictor] | None = None
    """For methods outside the Trainer: reload what ``fit`` saved in ``model/``."""
    uses_encoder: bool = True
    """Whether the method trains (or evaluates) a transformers encoder: it then has a tokenizer, a max length, and
    (through the Trainer) checkpoints and an ONNX export. False for the TF-IDF baseline."""
    search_space: Mapping[str, Mapping[str, Any]] | None = None
    """The default search space of ``distiltune tune``: dotted config keys to distributions, in a space file's form
    (``{"train.lr": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True}}``); None: the method has nothing to
    tune by default (``tune`` then asks for ``--space``). :func:`trainer_search_space` builds the usual one."""
    in_default_compare: bool = True
    """Whether ``compare`` runs this method when no ``--methods`` are given (in registration order)."""

    def refusal(self, encoder_config: Any, method_config: Any = None) -> str | None:
        """:attr:`unsupported_reason`'s answer for this encoder (None: supported, or nothing known against it)."""
        if self.unsupported_reason is None:
            return None
        return self.unsupported_reason(
            encoder_config, method_config if method_config is not None else self.config_cls()
        )

    @property
    def trains_with_trainer(self) -> bool:
        """True for methods that train (or only evaluate) through the Hugging Face Trainer; False for ``fit``."""
        return self.fit is None


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    if method.name != method.name.lower() or method.name in METHODS:
        raise ValueError(f"Method names must be lower-case and unique: {method.name!r}")
    if method.config_cls.name != method.name:
        raise ValueError(f"{method.config_cls.__name__}.name must be {method.name!r}")
    if (method.fit is None) == (method.apply is None):
        raise ValueError(f"Method {method.name!r} needs either apply/save/load (the Trainer) or fit/load_predictor")
    if (method.fit is None) != (method.load_predictor is None):
        raise ValueError(f"Method {method.name!r}: fit and load_predictor go together")
    if method.fit is None and not method.uses_encoder:
        raise ValueError(f"Method {method.name!r}: a method that trains through the Trainer uses an encoder")
    METHODS[method.name] = method
    return method


def method_names() -> list[str]:
    return list(METHODS)


def default_compare_methods() -> list[str]:
    """The methods ``compare`` runs when none are named: every registered one that joins by default."""
    return [name for name, method in METHODS.items() if method.in_default_compare]


def trainer_search_space(lr_low: float, lr_high: float, **extra: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The default search space of a method that trains by gradient: its learning-rate range (log-uniform), batch
    size, epochs, warmup and weight decay, plus the method's own keys in ``extra`` (``method_r=...`` for
    ``method.r``: the first underscore is the dot)."""
    space: dict[str, dict[str, Any]] = {
        "train.lr": {"type": "float", "low": lr_low, "high": lr_high, "log": True},
        "train.batch_size": {"type": "categorical", "choices": [8, 16, 32]},
        "train.epochs": {"type": "int", "low": 1, "high": 4},
        "train.warmup_fraction": {"type": "float", "low": 0.0, "high": 0.2},
        "train.weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
    }
    space.update({key.replace("_", ".", 1): dict(value) for key, value in extra.items()})
    return space


def get_method(name: str) -> Method:
    if name not in METHODS:
        close = difflib.get_close_matches(name, METHODS, n=1, cutoff=0.5)
        hint = f"Did you mean '{close[0]}'?" if close else f"Choose one of: {', '.join(METHODS)}."
        raise ConfigError(f"Unknown method '{name}'.", hint)
    return METHODS[name]


def get_method_config_class(name: str) -> type[MethodConfig]:
    return get_method(name).config_cls


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
