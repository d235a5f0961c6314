"""``distiltune config``: the run config itself, for editors (``schema``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distiltune.cli.common import app

config_app = typer.Typer(
    help="The run config (run.yaml): its JSON Schema, for editors that complete and check YAML.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")


@config_app.command("schema")
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the schema to FILE instead of printing it.")
    ] = None,
) -> None:
    """Print the JSON Schema of a run config: every section and key with its type, default and description; the
    method section is the registered methods' options, chosen by method.name."""
    import json

    from distiltune.config import Config

    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **Config.model_json_schema(),
        "title": "distiltune run config",
    }
    text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"Wrote the run config's JSON Schema to {output}.", err=True)
