"""``distiltune export``: ONNX (optionally int8) after a parity check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distiltune.cli.common import (
    Debug,
    app,
    setup_logging,
)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    format: Annotated[str, typer.Option("--format", help="Export format (onnx).")] = "onnx",
    quantize: Annotated[
        str | None, typer.Option(help="int8: dynamic int8 weights (the classification head stays float).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Export folder (default RUN_DIR/export/onnx or onnx-int8).")
    ] = None,
    min_agreement: Annotated[
        float | None,
        typer.Option(
            help="Refuse the export when its agreement with PyTorch is clearly below this (the whole 95% interval; "
            "default 0.99, int8 0.98)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Write the export even below --min-agreement.")] = False,
    max_samples: Annotated[
        int, typer.Option(help="Rows (from every split of the run's data) the parity check predicts with both models.")
    ] = 1000,
    optimize: Annotated[
        bool,
        typer.Option(
            "--optimize/--no-optimize",
            help="Fuse attention/LayerNorm/GELU with ONNX Runtime's optimizer (faster; the graph then needs ONNX "
            "Runtime).",
        ),
    ] = True,
    debug: Debug = False,
) -> None:
    """Export a run to ONNX (optionally int8), after a parity check against the PyTorch model."""
    from distiltune.export import export_run

    setup_logging()
    result = export_run(
        run_dir,
        format=format,
        quantize=quantize,
        output=output,
        min_agreement=min_agreement,
        force=force,
        max_samples=max_samples,
        optimize=optimize,
    )
    report = result.report
    accuracy = ""
    if "onnx_accuracy" in report:
        accuracy = f"; accuracy torch {report['torch_accuracy']:.4f}, export {report['onnx_accuracy']:.4f}"
    low, high = report["agreement_interval"]
    typer.echo(
        f"Agreement with PyTorch: {report['agreement']:.4f} on {report['samples']} rows (95% interval {low:.4f} to "
        f"{high:.4f}; largest probability difference {report['max_probability_difference']:.4f}){accuracy}; "
        f"{report['onnx_samples_per_second']:.1f} vs {report['torch_samples_per_second']:.1f} samples/s (torch fp32)."
    )
    if report.get("forced"):
        typer.echo(f"warning: written below --min-agreement {report['min_agreement']} because of --force.", err=True)
    typer.echo(f"Export written to {result.path} ({report['size_mb']} MB)")
