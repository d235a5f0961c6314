"""``distiltune presets``: the dataset presets."""

from __future__ import annotations

import typer

from distiltune.cli.common import (
    app,
)


@app.command("presets")
def list_presets() -> None:
    """List the dataset presets."""
    from distiltune.presets import presets

    for name, preset in presets().items():
        typer.echo(f"{name:16} {preset.source:22} {preset.description}")
