"""The ``distiltune`` command line: a thin typer layer that parses flags and calls the Python API, one module per
command group (:mod:`.train`, :mod:`.predict`, :mod:`.export`, :mod:`.serve`, :mod:`.demo`, :mod:`.compare`,
:mod:`.tune`, :mod:`.presets`, :mod:`.methods`, :mod:`.config`) over the shared pieces of :mod:`.common`.

User errors (``DistiltuneError``) print as one line on stderr with exit code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys

import typer

from distiltune.cli.common import app, is_main_process
from distiltune.errors import DistiltuneError


def main() -> None:
    """Console-script entry point."""
    debug = "--debug" in sys.argv
    try:
        app()
    except DistiltuneError as err:
        if debug:
            raise
        if is_main_process():  # every process of a multi-process run has the same error: say it once
            typer.echo(f"error: {err.one_line()}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt as err:
        # A run that was interrupted says where its checkpoint is and how to resume (distiltune.resume).
        if is_main_process():
            typer.echo(str(err) or "interrupted", err=True)
        sys.exit(130)


__all__ = ["app", "main"]

# Importing a command module registers its commands with the app; --help lists them in this order.
from distiltune.cli import train, predict, export, serve, demo, compare, tune, methods, presets, config  # noqa: E402, F401, I001
