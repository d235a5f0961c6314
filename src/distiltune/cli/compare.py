"""``distiltune compare`` and ``distiltune report``: grids of models x methods x seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from distiltune.cli.common import Debug, QuietOption, app, make_console, setup_logging
from distiltune.cli.flags import config_flags

#: The config flags of ``compare`` (cli/flags.py): what every run of the comparison shares.
COMPARE_FLAGS = (
    "dataset",
    "model",
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
    "compile",
    "deterministic",
)


@app.command()
@config_flags(COMPARE_FLAGS)
def compare(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="YAML config shared by every run; may hold a models: list of entries."),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated models (hub ids, local directories, minilm); default: --model's one."),
    ] = None,
    models_config: Annotated[
        Path | None,
        typer.Option(help="YAML list of model entries with per-model settings: {name, train.lr, ...}."),
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(help="Comma-separated methods (see distiltune methods); default: those that join by default."),
    ] = None,
    seeds: Annotated[str | None, typer.Option(help="A count (3: seed, seed+1, seed+2) or a list (1,2,3).")] = None,
    overrides: dict[str, Any] | None = None,
    output_dir: Annotated[str | None, typer.Option(help="Folder for the comparison (default compare/).")] = None,
    resume: Annotated[
        Path | None, typer.Option(help="An earlier comparison folder: skip its completed runs, retry the rest.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override any config key: --set train.lr=3e-5, --set method.r=16 (where it fits).",
        ),
    ] = None,
    quiet: QuietOption = False,
    debug: Debug = False,
) -> None:
    """Run models x methods x seeds on identical splits and write a comparison report (table, plots, HTML)."""
    import distiltune
    from distiltune.config import parse_overrides

    setup_logging(quiet)
    overrides = {**(overrides or {}), **parse_overrides(set_ or [])}
    comparison = distiltune.compare(
        config,
        overrides or None,
        methods=methods,
        seeds=seeds,
        output_dir=output_dir,
        resume=resume,
        models=models,
        models_config=models_config,
    )
    print_comparison(comparison)


@app.command()
def report(
    compare_dir: Annotated[Path, typer.Argument(help="A folder written by distiltune compare.")],
    debug: Debug = False,
) -> None:
    """Regenerate a comparison's table, plots and report.html from its run directories."""
    import distiltune

    setup_logging(quiet=True)
    print_comparison(distiltune.render_report(compare_dir))


def print_comparison(comparison: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from distiltune.comparison.statistics import row_name
    from distiltune.comparison.table import LABEL_COLUMNS, table_cells, table_headers

    table = Table(title=f"Comparison {comparison.dir}")
    for index, header in enumerate(table_headers()):
        table.add_column(header, justify="left" if index < LABEL_COLUMNS else "right", no_wrap=True)
    for row in comparison.table:
        table.add_row(*table_cells(row, digits=3), style="red" if row["seeds_completed"] == 0 else None)
    from rich.console import Console

    # A dozen columns of "mean ± sd" need 180 characters or more (the widths depend on the figures); a narrower
    # console would truncate cells, so the table gets its natural width.
    natural_width = Console(width=10_000).measure(table).maximum
    console = Console(soft_wrap=False, width=max(make_console().width, natural_width))
    console.print(table)
    for row in comparison.table:
        if row["error"]:
            console.print(f"[red]{escape(row_name(row))} failed[/red]: {escape(row['error'])}", highlight=False)
    recommendation = getattr(comparison, "recommendation", None)
    if recommendation:
        console.print(f"Recommendation: {escape(recommendation['line'])}", highlight=False)
    typer.echo(f"Report: {comparison.report}")
