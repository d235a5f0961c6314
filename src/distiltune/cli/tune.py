"""``distiltune tune``: hyperparameter search with Optuna."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from distiltune.cli.common import Debug, QuietOption, SetOption, app, fmt, make_console, setup_logging
from distiltune.cli.flags import config_flags

#: The config flags of ``tune`` (cli/flags.py): the settings every trial starts from, unless the space searches them.
TUNE_FLAGS = (
    "dataset",
    "model",
    "method",
    "epochs",
    "batch-size",
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
    "report-to",
)


@app.command("tune")
@config_flags(TUNE_FLAGS)
def tune_command(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config every trial starts from.")] = None,
    trials: Annotated[
        int, typer.Option(help="Completed or pruned trials the study should reach (all workers together).")
    ] = 20,
    space: Annotated[
        Path | None, typer.Option(help="YAML search space (default: the method's; see docs/tune.md).")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL of the study (default: study.db in the tune folder), e.g. sqlite:///s.db."),
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name; workers with the same name and storage share the study.")
    ] = None,
    timeout: Annotated[
        str | None, typer.Option(help="Start no trial after this long: seconds, or 90m, 2h, 1h30m.")
    ] = None,
    pruner: Annotated[str, typer.Option(help="median, hyperband or none.")] = "median",
    output_dir: Annotated[
        str, typer.Option(help="Folder holding tune folders; a worker joins its study's folder there.")
    ] = "tune",
    sampler_seed: Annotated[
        int | None, typer.Option(help="Seed the TPE sampler (single worker: reproducible proposals).")
    ] = None,
    keep_checkpoints: Annotated[
        bool,
        typer.Option(
            "--keep-checkpoints/--no-keep-checkpoints",
            help="Keep each trial's checkpoints/ (its model/ is always kept).",
        ),
    ] = False,
    overrides: dict[str, Any] | None = None,
    set_: SetOption = None,
    quiet: QuietOption = False,
    debug: Debug = False,
) -> None:
    """Search hyperparameters with Optuna (TPE, pruning); each trial is a run. Writes best.yaml, trials.csv, plots
    and report.html in tune/<timestamp>_<study>/."""
    import distiltune
    from distiltune.config import parse_overrides

    setup_logging(quiet)
    import optuna

    # distiltune logs each trial in one line (tracebacks go to tune.log); Optuna would repeat it with a traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    overrides = {**(overrides or {}), **parse_overrides(set_ or [])}
    from distiltune.training.interrupts import RunInterrupted

    try:
        result = distiltune.tune(
            config,
            overrides,
            trials=trials,
            space=space,
            storage=storage,
            study=study,
            timeout=timeout,
            pruner=pruner,
            output_dir=output_dir,
            sampler_seed=sampler_seed,
            keep_checkpoints=keep_checkpoints,
        )
    except RunInterrupted as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(130) from None
    print_tune_result(result)


def print_tune_result(result: Any, top: int = 10) -> None:
    from rich.table import Table

    done = [row for row in result.trials if row["state"] == "complete"]
    done.sort(key=lambda row: row["value"], reverse=result.direction == "maximize")
    keys = list(dict.fromkeys(key for row in result.trials for key in row["params"]))
    counts = result.counts
    table = Table(
        title=f"Study {result.study}: {counts['complete']} completed, {counts['pruned']} pruned, "
        f"{counts['fail']} failed (best {min(top, len(done))} shown)"
    )
    table.add_column("trial", justify="right")
    table.add_column(f"validation {result.metric}", justify="right")
    for key in keys:
        table.add_column(key, justify="right")
    for row in done[:top]:
        values = [row["value"], *(row["params"].get(key) for key in keys)]
        table.add_row(str(row["number"]), *[format(v, ".4g") if isinstance(v, float) else fmt(v) for v in values])
    make_console().print(table)
    if result.best_config is not None:
        typer.echo(f"Best: trial {result.best_trial}. Repeat it with: distiltune train --config {result.best_config}")
    typer.echo(f"Report: {result.report}")
