"""Search spaces: which config keys a study varies, and over which values.

A space maps dotted config keys (the ones ``--set`` takes) to a distribution; in YAML::

    train.lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
    train.batch_size: {type: categorical, choices: [8, 16, 32]}
    train.epochs: {type: int, low: 1, high: 4}
    train.warmup_fraction: {type: float, low: 0.0, high: 0.2, step: 0.05}
    method.r: {type: categorical, choices: [4, 8, 16]}

``float`` and ``int`` take ``low``/``high`` (both included), optional ``log: true`` (log-uniform; needs low > 0)
or ``step``; ``categorical`` takes ``choices`` (numbers, strings, true/false, null). A space file replaces the
method's default space (:func:`default_space`) as a whole. Every entry is checked against the config before any
trial runs: the key must exist for the method, the type must suit the setting, and the bounds and choices must be
values the config accepts; a mistake is a one-line ConfigError naming the file and the key.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, RootModel, ValidationInfo, model_serializer, model_validator

from distiltune.config import Config, DataConfig, ModelConfig, TrainConfig, load_config, read_yaml_file
from distiltune.errors import ConfigError
from distiltune.methods import get_method, get_method_config_class, method_names
from distiltune.schema import ConfigModel

ParamType = Literal["float", "int", "categorical"]
PARAM_TYPES: tuple[str, ...] = ("float", "int", "categorical")
_FIELDS: dict[str, tuple[str, ...]] = {
    "float": ("type", "low", "high", "log", "step"),
    "int": ("type", "low", "high", "log", "step"),
    "categorical": ("type", "choices"),
}
#: Keys a space may not vary: where runs go, and the method (a study tunes one method; compare methods instead).
_FIXED_KEYS = ("run.", "method.name")


class SearchParam(ConfigModel):
    """One searched config key and its distribution: a space file's entry for that key."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(exclude=True)
    """The dotted config key it sets (``train.lr``): the entry's name in the space file, not part of the entry."""
    type: ParamType
    """float, int (``low``/``high``, both included) or categorical (``choices``)."""
    low: int | float | None = None
    """The smallest value (float and int)."""
    high: int | float | None = None
    """The largest value (float and int)."""
    log: bool = False
    """Sample log-uniformly (float and int; needs low > 0)."""
    step: int | float | None = None
    """Sample on a grid of this step from low (float and int; not with log)."""
    choices: tuple[Any, ...] | None = None
    """The values to try (categorical): numbers, strings, true/false, null."""

    @model_validator(mode="before")
    @classmethod
    def _check_entry(cls, raw: Any, info: ValidationInfo) -> Any:
        """A space file's entry checked in the order a reader fixes it: the type, its fields, then their values;
        each mistake is one line naming the source and the key."""
        if not isinstance(raw, Mapping) or "key" not in raw:
            return raw  # built in Python: pydantic checks the fields
        spec = {name: value for name, value in raw.items() if name != "key"}
        key = str(raw["key"])
        where = f"{(info.context or {}).get('source') or 'space'}: {key}"
        return {"key": key, **_checked_spec(spec, where)}

    @model_serializer
    def _yaml_form(self) -> dict[str, Any]:
        return self.to_dict()

    def suggest(self, trial: Any) -> Any:
        """This parameter's value for an Optuna trial (the parameter is named after the config key)."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices or ()))
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)

    def to_dict(self) -> dict[str, Any]:
        """The YAML form (what a space file holds for this key)."""
        if self.type == "categorical":
            return {"type": "categorical", "choices": list(self.choices or ())}
        out: dict[str, Any] = {"type": self.type, "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out

    def describe(self) -> str:
        if self.type == "categorical":
            return "{" + ", ".join(map(str, self.choices or ())) + "}"
        scale = " log" if self.log else (f" step {self.step:g}" if self.step is not None else "")
        return f"[{self.low:g}, {self.high:g}]{scale}"


SearchSpace = dict[str, SearchParam]


class SpaceFile(RootModel[dict[str, SearchParam]]):
    """A space file (or a method's default space, or the same mapping given in Python): dotted config keys to
    distributions. Its entries are checked on their own here; :func:`check_space` checks them against a config."""

    @model_validator(mode="before")
    @classmethod
    def _keyed_entries(cls, raw: Any, info: ValidationInfo) -> Any:
        source = (info.context or {}).get("source") or "space"
        example = "e.g. train.lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}"
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{source}: expected a mapping of config keys to distributions, {example}.")
        if not raw:
            raise ConfigError(f"{source}: the search space is empty.", f"Add at least one key, {example}.")
        entries = {}
        for key, spec in raw.items():
            if isinstance(spec, SearchParam):
                entries[str(key)] = spec
                continue
            if not isinstance(spec, Mapping):
                raise ConfigError(
                    f"{source}: {key}: expected a mapping with a type (float, int or categorical), got {spec!r}.",
                    "E.g. {type: categorical, choices: [8, 16, 32]}.",
                )
            entries[str(key)] = {**spec, "key": str(key)}
        return entries

    @classmethod
    def parse(cls, raw: Any, source: str) -> SearchSpace:
        """The entries of ``raw``, checked on their own; ConfigErrors name ``source`` and the key."""
        return dict(cls.model_validate(raw, context={"source": source}).root)


def default_space(method: str) -> SearchSpace:
    """The default space of a method: the one it registers (``Method.search_space``; for the methods that train by
    gradient, the learning rate around the method's default, batch size, epochs, warmup and weight decay, plus
    LoRA's rank and alpha and the prompt length of prompt/prefix tuning)."""
    raw = get_method(method).search_space
    if raw is None:
        tunable = [name for name in method_names() if get_method(name).search_space is not None]
        raise ConfigError(
            f"There is no default search space for method '{method}'.",
            f"Pass --space FILE (docs/tune.md), or tune one of: {', '.join(tunable)}.",
        )
    return SpaceFile.parse(raw, f"method {method}'s default space")


def resolve_space(space: str | Path | Mapping[str, Any] | None, base: Config) -> SearchSpace:
    """The space a study searches: ``base``'s method default when ``space`` is None, else a YAML file (path) or the
    same mapping given in Python, checked against ``base``."""
    if space is None:
        parsed = default_space(base.method.name)
        check_space(parsed, base, "default space")
        return parsed
    if isinstance(space, str | Path):
        return parse_space(read_yaml_file(space), base, str(space))
    return parse_space(space, base, "space")


def parse_space(raw: Any, base: Config, source: str = "space") -> SearchSpace:
    """Parse and check a space mapping (the contents of a space file); ConfigErrors name ``source`` and the key."""
    space = SpaceFile.parse(raw, source)
    check_space(space, base, source)
    return space


def space_to_dict(space: SearchSpace) -> dict[str, dict[str, Any]]:
    return {key: param.to_dict() for key, param in space.items()}


def suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """One trial's values, ``{"train.lr": 3.1e-5, ...}``: config overrides."""
    return {key: param.suggest(trial) for key, param in space.items()}


def check_space(space: SearchSpace, base: Config, source: str) -> None:
    """Each key exists for ``base``'s method, its type suits the setting, and its bounds/choices are valid values."""
    annotations = _annotations(base.method.name)
    for key, param in space.items():
        where = f"{source}: {key}"
        if key.startswith(_FIXED_KEYS[0]) or key == _FIXED_KEYS[1]:
            raise ConfigError(
                f"{where}: this key cannot be searched.", "A study tunes one method, and its runs go to trials/."
            )
        if key not in annotations:
            close = difflib.get_close_matches(key, list(annotations), n=1, cutoff=0.6)
            hint = f"Did you mean '{close[0]}'?" if close else "Use a dotted config key, e.g. train.lr or method.r."
            raise ConfigError(f"{where}: not a config key of method '{base.method.name}'.", hint)
        kind = _kind(annotations[key])
        if param.type == "float" and kind != "float":
            raise ConfigError(f"{where}: type float does not suit this {kind} setting.", _type_hint(kind))
        if param.type == "int" and kind not in ("int", "float"):
            raise ConfigError(f"{where}: type int does not suit this {kind} setting.", _type_hint(kind))
        candidates = (
            [("choice", value) for value in param.choices or ()]
            if param.type == "categorical"
            else [("low", param.low), ("high", param.high)]
        )
        for name, value in candidates:
            try:
                load_config(base, {key: value})
            except ConfigError as err:
                raise ConfigError(f"{where}: {name} {value!r} is not a valid value ({err.message})") from None


def _checked_spec(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A space entry's fields, checked and with its bounds as numbers of its type (``1e-5``, which YAML 1.1 reads
    as a string, as a float)."""
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise ConfigError(f"{where}: type must be one of {', '.join(PARAM_TYPES)}; got {kind!r}.")
    for field in spec:
        if field not in _FIELDS[kind]:
            close = difflib.get_close_matches(str(field), _FIELDS[kind], n=1, cutoff=0.5)
            hint = f"Did you mean '{close[0]}'?" if close else f"A {kind} takes: {', '.join(_FIELDS[kind])}."
            raise ConfigError(f"{where}: unknown field '{field}' for type {kind}.", hint)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list | tuple) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list, e.g. choices: [8, 16, 32].")
        for choice in choices:
            if choice is not None and not isinstance(choice, bool | int | float | str):
                raise ConfigError(f"{where}: choice {choice!r} must be a number, a string, true/false or null.")
        if len({repr(choice) for choice in choices}) != len(choices):
            raise ConfigError(f"{where}: choices repeat a value.")
        return {"type": "categorical", "choices": tuple(choices)}
    bounds = {}
    for name in ("low", "high"):
        value = spec.get(name)
        if isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(f"{where}: {name} must be a number, got {value!r}.")
        if kind == "int" and not float(value).is_integer():
            raise ConfigError(f"{where}: {name} must be a whole number for type int, got {value!r}.")
        bounds[name] = int(value) if kind == "int" else float(value)
    low, high = bounds["low"], bounds["high"]
    if not low < high:
        raise ConfigError(f"{where}: low ({low:g}) must be below high ({high:g}).")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}.")
    if log and low <= 0:
        raise ConfigError(f"{where}: log: true needs low > 0, got {low:g}.")
    step = spec.get("step")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0:
            raise ConfigError(f"{where}: step must be a positive number, got {step!r}.")
        if kind == "int" and not float(step).is_integer():
            raise ConfigError(f"{where}: step must be a whole number for type int, got {step!r}.")
        if log:
            raise ConfigError(f"{where}: step and log: true cannot be combined.")
        step = int(step) if kind == "int" else float(step)
    return {"type": kind, "low": low, "high": high, "log": log, "step": step}


def _annotations(method: str) -> dict[str, Any]:
    sections: dict[str, type[ConfigModel]] = {
        "data": DataConfig,
        "model": ModelConfig,
        "method": get_method_config_class(method),
        "train": TrainConfig,
    }
    return {
        f"{section}.{name}": info.annotation
        for section, cls in sections.items()
        for name, info in cls.model_fields.items()
    }


def _kind(annotation: Any) -> str:
    """float, int, or 'non-numeric' for the setting's annotation (Optional unwrapped)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = options[0] if len(options) == 1 else annotation
    if annotation is float:
        return "float"
    if annotation is int:
        return "int"
    return "non-numeric"


def _type_hint(kind: str) -> str:
    return "Use type int or categorical." if kind == "int" else "Use type categorical with the values to try."


__all__ = [
    "SearchParam",
    "SpaceFile",
    "SearchSpace",
    "default_space",
    "parse_space",
    "resolve_space",
    "space_to_dict",
    "suggest",
]
