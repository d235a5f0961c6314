"""``distiltune demo``: the offline quickstart."""

from __future__ import annotations

from typing import Annotated

import typer

from distiltune.cli.common import (
    Debug,
    app,
    make_console,
    print_metrics,
    setup_logging,
)


@app.command()
def demo(
    epochs: Annotated[float, typer.Option(help="Training epochs.")] = 2.0,
    output_dir: Annotated[str, typer.Option(help="Where the run directory goes.")] = "runs",
    debug: Debug = False,
) -> None:
    """Offline demo: fine-tune the packaged MiniLM on 1,500 bundled IMDb reviews, report test metrics and
    classify a few new sentences. Needs no network."""
    from distiltune.training.demo import DEMO_SENTENCES, DEMO_TITLE, run_demo

    setup_logging()
    result = run_demo(epochs, output_dir)
    run = result.run
    print_metrics(run.metrics, title=DEMO_TITLE)
    console = make_console()
    from rich.table import Table

    table = Table(title="Predictions on new sentences")
    table.add_column("text")
    table.add_column("label")
    table.add_column("score", justify="right")
    for text, prediction in zip(DEMO_SENTENCES, result.predictions, strict=True):
        table.add_row(text, prediction["label"], f"{prediction['score']:.3f}")
    console.print(table)
    typer.echo(f"Run directory: {run.dir}")
    typer.echo(f'Try: distiltune predict {run.dir} "What a wonderful film" --top-k 2')
