"""``distiltune serve``: the HTTP server over a run.

Its flags are the fields of :class:`~distiltune.server.settings.ServeSettings`, read from the model (name, type,
default, the first paragraph of the docstring as help): a new server setting is one field there and no edit here.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from distiltune.cli.common import Debug, app, setup_logging
from distiltune.server.settings import ServeSettings, flag_name

#: The parameter of the command function that receives the built :class:`ServeSettings`.
SETTINGS = "settings"


def settings_parameters() -> list[inspect.Parameter]:
    """One typer parameter per :class:`ServeSettings` field: the required ones are arguments, the rest options
    (``--x/--no-x`` for a boolean) with the field's default."""
    parameters = []
    for name, field in ServeSettings.model_fields.items():
        help_text = " ".join((field.description or "").split("\n\n")[0].split())
        if field.is_required():
            info: Any = typer.Argument(help=help_text, show_default=False)
            default: Any = inspect.Parameter.empty
        else:
            flag = flag_name(name)
            declaration = f"{flag}/--no-{flag[2:]}" if field.annotation is bool else flag
            info = typer.Option(declaration, help=help_text)
            default = field.default
        parameters.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[field.annotation, info]
            )
        )
    return parameters


def with_settings_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Replace the command's ``settings`` parameter by the flags of :func:`settings_parameters`; the command is called
    with ``settings=ServeSettings(...)`` of their values (a value out of range: a one-line ConfigError)."""
    signature = inspect.signature(command, eval_str=True)
    own = [parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY) for parameter in signature.parameters.values()]
    at = [parameter.name for parameter in own].index(SETTINGS)
    fields = settings_parameters()
    names = {parameter.name for parameter in fields}

    @functools.wraps(command)
    def with_settings(**values: Any) -> Any:
        settings = ServeSettings(**{name: values.pop(name) for name in names})
        return command(**values, **{SETTINGS: settings})

    with_settings.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*own[:at], *fields, *own[at + 1 :]]
    )
    return with_settings


@app.command()
@with_settings_flags
def serve(settings: ServeSettings, debug: Debug = False) -> None:
    """Serve a run over HTTP: POST /predict (text-embeddings-inference's shape), /health, /info, /metrics, /docs."""
    from distiltune.server import load_classifier, read_api_key, serve

    setup_logging(quiet=True)  # no progress bars while loading; the server then logs through its own handler
    read_api_key(settings)  # a missing key fails now, not after the model has loaded
    # Loaded here so a bad run directory is a one-line error; worker processes (--workers N) load their own copy.
    classifier = load_classifier(settings)
    serve(settings, classifier if settings.workers == 1 else None)
