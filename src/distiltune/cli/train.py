"""Fine-tuning: ``distiltune train`` (one process, or launched with torchrun / accelerate)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from distiltune.cli.common import (
    Debug,
    QuietOption,
    SetOption,
    app,
    is_main_process,
    print_metrics,
    setup_logging,
)
from distiltune.cli.flags import config_flags

#: The config flags of ``train`` (cli/flags.py), in the order of ``--help``.
TRAIN_FLAGS = (
    "dataset",
    "model",
    "method",
    "head",
    "pooling",
    "merge",
    "epochs",
    "batch-size",
    "lr",
    "max-length",
    "text-column",
    "text-pair-column",
    "label-column",
    "multi-label",
    "label-columns",
    "label-separator",
    "label-names-file",
    "column-names",
    "seed",
    "long-text",
    "class-weights",
    "loss",
    "calibrate",
    "tune-threshold",
    "output-dir",
    "name",
    "compile",
    "deterministic",
    "report-to",
)


@app.command()
@config_flags(TRAIN_FLAGS)
def train(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config (e.g. a run's config.yaml).")
    ] = None,
    overrides: dict[str, Any] | None = None,
    set_: SetOption = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue an interrupted or crashed run directory from its newest complete checkpoint."),
    ] = None,
    nproc: Annotated[
        int | None,
        typer.Option(
            "--nproc",
            help="Train with N processes on this machine (one per GPU): starts torchrun. "
            "--batch-size stays per process. See docs/distributed.md.",
        ),
    ] = None,
    accelerate_config: Annotated[
        Path | None,
        typer.Option(
            "--accelerate-config",
            help="Start through accelerate launch with this config file (FSDP, DeepSpeed, several machines).",
        ),
    ] = None,
    quiet: QuietOption = False,
    debug: Debug = False,
) -> None:
    """Fine-tune a model and write a run directory (model, metrics, history, predictions, plots)."""
    if accelerate_config is not None or (nproc is not None and nproc != 1):
        _launch(nproc, accelerate_config)
    import distiltune
    from distiltune.config import parse_overrides
    from distiltune.training.interrupts import RunInterrupted

    setup_logging(quiet)
    overrides = {**(overrides or {}), **parse_overrides(set_ or [])}
    try:
        run = distiltune.train(config, overrides, resume=resume)
    except RunInterrupted as err:  # typer turns a bare KeyboardInterrupt into a silent exit 130
        if is_main_process():
            typer.echo(str(err), err=True)
        raise typer.Exit(130) from None
    if is_main_process():
        print_metrics(run.metrics, title=f"Run {run.dir}")
        typer.echo(f"Run directory: {run.dir}")


def _launch(nproc: int | None, accelerate_config: Path | None) -> None:
    """Replace this process with torchrun (or accelerate launch) running ``distiltune train`` with the same
    arguments less the launcher options; signals and the exit status are the launcher's from here on."""
    from distiltune.training import distributed

    distributed.refuse_nested_launch()
    args = sys.argv[1:]
    args = args[args.index("train") + 1 :] if "train" in args else args
    command = distributed.launch_command(args, nproc, accelerate_config)
    typer.echo(f"Starting: {' '.join(command)}", err=True)
    sys.stderr.flush()
    sys.stdout.flush()
    os.execv(command[0], command)
