"""``distiltune methods``: the registered tuning methods."""

from __future__ import annotations

import typer

from distiltune.cli.common import app


@app.command("methods")
def list_methods() -> None:
    """List the tuning methods (--method, --methods): name, default learning rate, what it does."""
    from distiltune.methods import get_method, get_method_config_class, method_names

    for name in method_names():
        method = get_method(name)
        # A method that takes no optimizer step (a baseline, or one fitted outside the Trainer) has no learning rate.
        trains_by_gradient = method.trains and method.trains_with_trainer
        lr = f"lr {get_method_config_class(name).default_lr:g}" if trains_by_gradient else "-"
        typer.echo(f"{name:10} {lr:10} {method.description}")
