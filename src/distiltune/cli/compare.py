"""``distiltune compare`` and ``distiltune report``: grids of models x methods x seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from distiltune.cli.common import (
    BatchSizeOption,
    DatasetOption,
    Debug,
    EpochsOption,
    HeadOption,
    LabelColumnOption,
    PoolingOption,
    TextColumnOption,
    TextPairColumnOption,
    app,
    make_console,
    setup_logging,
)


@app.command()
def compare(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="YAML config shared by every run; may hold a models: list of entries."),
    ] = None,
    dataset: DatasetOption = None,
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated models (hub ids, local directories, minilm); default: --model's one."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="One model (hub id, local directory, or 'minilm').")] = None,
    models_config: Annotated[
        Path | None,
        typer.Option(help="YAML list of model entries with per-model settings: {name, train.lr, ...}."),
    ] = None,
    methods: Annotated[
        str | None, typer.Option(help="Comma-separated methods (default: every registered one of the issue's).")
    ] = None,
    seeds: Annotated[str | None, typer.Option(help="A count (3: seed, seed+1, seed+2) or a list (1,2,3).")] = None,
    head: HeadOption = None,
    pooling: PoolingOption = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="LoRA: also write model/merged/ that plain transformers loads.")
    ] = False,
    epochs: EpochsOption = None,
    batch_size: BatchSizeOption = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate for every run (default: each method's).")] = None,
    max_length: Annotated[
        int | None, typer.Option(help="Max tokens per example (default: per model, pinned for all its runs).")
    ] = None,
    text_column: TextColumnOption = None,
    text_pair_column: TextPairColumnOption = None,
    label_column: LabelColumnOption = None,
    seed: Annotated[int | None, typer.Option(help="First seed (and the validation split's seed).")] = None,
    output_dir: Annotated[str | None, typer.Option(help="Folder for the comparison (default compare/).")] = None,
    resume: Annotated[
        Path | None, typer.Option(help="An earlier comparison folder: skip its completed runs, retry the rest.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override any config key: --set train.lr=3e-5, --set method.r=16 (where it fits)."),
    ] = None,
    compile_model: Annotated[
        bool,
        typer.Option(
            "--compile", help="torch.compile the model (opt-in: minutes of warm-up, rarely worth it on CPU)."
        ),
    ] = False,
    deterministic: Annotated[
        bool | None, typer.Option("--deterministic", help="Use torch's deterministic kernels (slower on GPU).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and the final table.")] = False,
    debug: Debug = False,
) -> None:
    """Run models x methods x seeds on identical splits and write a comparison report (table, plots, HTML)."""
    import distiltune
    from distiltune.config import parse_overrides

    setup_logging(quiet)
    flags = {
        "data.dataset": dataset,
        "model.name": model,
        "model.head": head,
        "model.pooling": pooling,
        "method.merge": True if merge else None,
        "train.epochs": epochs,
        "train.batch_size": batch_size,
        "train.lr": lr,
        "data.max_length": max_length,
        "data.text_column": text_column,
        "data.text_pair_column": text_pair_column,
        "data.label_column": label_column,
        "train.seed": seed,
        "train.compile": True if compile_model else None,
        "train.deterministic": deterministic,
    }
    overrides = {key: value for key, value in flags.items() if value is not None}
    overrides.update(parse_overrides(set_ or []))
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
