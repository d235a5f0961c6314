"""The base of every config a user writes: a pydantic model whose mistakes are one-line :class:`ConfigError`\\ s.

A :class:`ConfigModel` forbids unknown keys, takes each field's docstring as its description (``distiltune config
schema`` prints them for editors) and validates in the model: types and ranges by pydantic (``Field(ge=1)``), the
rest by validators that raise :class:`ConfigError` themselves. pydantic's lax mode does the conversions a YAML file
or a command line needs (``"1e-5"``, which YAML 1.1 reads as a string, to a float; ``"yes"``/``"off"`` to booleans;
a whole float to an int); :data:`CommaList` adds ``"a,b"`` for list fields. Whatever pydantic refuses is translated
here, once, into today's one-line messages: the source (a file, or ``config``), the dotted key, the value and what
is allowed, with a "did you mean" for an unknown key.

The source and the keys that came from overrides travel in the validation context
(``Model.model_validate(raw, context=error_context(...))``): a key from an override is not blamed on the file.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import annotated_types
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo, model_validator
from pydantic_core import ErrorDetails

from distiltune.errors import ConfigError

#: The source named in messages when the values did not come from a file.
DEFAULT_SOURCE = "config"


@dataclass(frozen=True)
class Hint:
    """What to do, appended to the message when the field's value is refused (``Annotated[float, Hint("...")]``)."""

    text: str


def _split_commas(value: Any) -> Any:
    """``"a, b"`` (a command-line value) as ``["a", "b"]``; anything else is left to the list's own validation."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


#: A list of strings that also accepts one comma-separated string (``--set method.target_modules=query,value``).
CommaList = Annotated[list[str], BeforeValidator(_split_commas)]


def error_context(source: str | None = None, overrides: Collection[str] = ()) -> dict[str, Any]:
    """The validation context that names the file the values came from and the dotted keys that overrode it."""
    return {"source": source or DEFAULT_SOURCE, "overrides": frozenset(overrides)}


class ConfigModel(BaseModel):
    """A config section a user writes: unknown keys refused, one docstring per field, mistakes as ConfigErrors."""

    model_config = ConfigDict(
        extra="forbid",
        use_attribute_docstrings=True,
        # YAML reads `train_split: 2020` or `label_names: [0, 1]` as numbers; they are names.
        coerce_numbers_to_str=True,
    )

    section: ClassVar[str] = ""
    """The dotted prefix of this model's keys in messages (``train`` for ``train.lr``); empty at the top."""

    @model_validator(mode="wrap")
    @classmethod
    def _one_line_errors(cls, raw: Any, handler: Any, info: ValidationInfo) -> Any:
        context = info.context or {}
        if isinstance(raw, Mapping):
            _refuse_booleans_as_numbers(cls, raw, context)
        try:
            return handler(raw)
        except ValidationError as err:
            raise translate(err, cls, context) from None

    @classmethod
    def unknown_key_error(cls, key: str, prefix: str) -> ConfigError:
        """The error for a key this model does not have: the closest one it has, else all of them."""
        allowed = list(cls.model_fields)
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
        hint = f"Did you mean '{close[0]}'?" if close else f"Valid keys: {', '.join(allowed)}."
        where = f"{prefix}{cls.section}: " if cls.section else prefix
        return ConfigError(f"{where}unknown key '{key}'.", hint)

    @classmethod
    def dotted(cls, field: str) -> str:
        return f"{cls.section}.{field}" if cls.section else field


def translate(err: ValidationError, model: type[ConfigModel], context: Mapping[str, Any]) -> ConfigError:
    """pydantic's first complaint about ``model`` as one line naming the source, the key, the value and what is
    allowed."""
    details: ErrorDetails = err.errors(include_url=False)[0]
    names = [str(part) for part in details["loc"] if isinstance(part, str)]
    field = names[0] if names else ""
    key = model.dotted(field) if field else model.section
    prefix = f"{_source(key, context)}: "
    kind, value = details["type"], details.get("input")
    if kind == "extra_forbidden":
        return model.unknown_key_error(field, prefix)
    if not field:  # the section itself: a number or a list where a mapping belongs
        where = f"{prefix}{model.section}: " if model.section else prefix
        return ConfigError(f"{where}expected a mapping, got {type(value).__name__}.")
    info = model.model_fields.get(field)
    hint = _hint(info.metadata) if info is not None else None
    if kind == "missing":
        return ConfigError(f"{prefix}{key} is required.", hint)
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        allowed = _range_text(info.metadata if info is not None else [], details.get("ctx") or {})
        return ConfigError(f"{key} must be {allowed}, got {value}.", hint)
    if kind == "literal_error":
        choices = _literal_choices(info.annotation if info is not None else None)
        expected = ", ".join(map(str, choices)) if choices else str((details.get("ctx") or {}).get("expected"))
        return ConfigError(f"{prefix}{key} must be one of {expected}; got '{value}'.", hint)
    expected = _EXPECTED.get(kind)
    if expected is not None:
        return ConfigError(f"{prefix}{key} must be {expected}, got {value!r}.", hint)
    return ConfigError(f"{prefix}{key}: {details['msg'][:1].lower()}{details['msg'][1:]} (got {value!r}).", hint)


_EXPECTED = {
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
}


def _source(key: str, context: Mapping[str, Any]) -> str:
    """The file the value of ``key`` came from, or ``config`` when an override set it (or there is no file)."""
    source = str(context.get("source") or DEFAULT_SOURCE)
    overrides: Collection[str] = context.get("overrides") or ()
    if key in overrides or any(name.startswith(f"{key}.") for name in overrides):
        return DEFAULT_SOURCE
    return source


def _hint(metadata: list[Any]) -> str | None:
    return next((item.text for item in metadata if isinstance(item, Hint)), None)


def _range_text(metadata: list[Any], ctx: Mapping[str, Any]) -> str:
    """``>= 1``, ``> 0`` or ``in [0, 1)``, from the field's bounds."""
    lower = upper = None
    for item in metadata:
        if isinstance(item, annotated_types.Gt):
            lower = ("(", ">", item.gt)
        elif isinstance(item, annotated_types.Ge):
            lower = ("[", ">=", item.ge)
        elif isinstance(item, annotated_types.Lt):
            upper = (")", "<", item.lt)
        elif isinstance(item, annotated_types.Le):
            upper = ("]", "<=", item.le)
    if lower is None and upper is None:  # a bound pydantic reports that the field does not declare itself
        operator = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
        return " and ".join(f"{operator[name]} {bound}" for name, bound in ctx.items() if name in operator)
    if lower is not None and upper is not None:
        return f"in {lower[0]}{lower[2]}, {upper[2]}{upper[0]}"
    bracket, operator, bound = lower if lower is not None else upper  # type: ignore[misc]
    return f"{operator} {bound}"


def _literal_choices(annotation: Any) -> tuple[Any, ...]:
    for option in _union_members(annotation):
        if typing.get_origin(option) is Literal:
            return typing.get_args(option)
    return ()


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(option for option in typing.get_args(annotation) if option is not type(None))
    return (annotation,)


_NUMBER_FIELDS: dict[type, dict[str, str]] = {}


def _refuse_booleans_as_numbers(model: type[ConfigModel], raw: Mapping[str, Any], context: Mapping[str, Any]) -> None:
    """pydantic reads true as 1; a number setting given true or false is a mistake, not a count of one."""
    if model not in _NUMBER_FIELDS:
        kinds = {int: "an integer", float: "a number"}
        _NUMBER_FIELDS[model] = {
            name: kinds[members[0]]
            for name, info in model.model_fields.items()
            if len(members := _union_members(info.annotation)) == 1 and members[0] in kinds
        }
    for field, expected in _NUMBER_FIELDS[model].items():
        value = raw.get(field)
        if isinstance(value, bool):
            key = model.dotted(field)
            raise ConfigError(f"{_source(key, context)}: {key} must be {expected}, got {value!r}.")


__all__ = ["DEFAULT_SOURCE", "CommaList", "ConfigModel", "Hint", "error_context", "translate"]
