"""Using a trained run: ``distiltune evaluate`` and ``distiltune predict``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from distiltune.cli.common import (
    Debug,
    app,
    print_metrics,
    setup_logging,
)


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    dataset: Annotated[str, typer.Option(help="File, folder, preset or hub id to evaluate on.")],
    output: Annotated[Path | None, typer.Option(help="Metrics JSON path (default: RUN_DIR/eval_<name>.json).")] = None,
    text_column: Annotated[
        str | None, typer.Option(help="Text column (default: the run's, else detected as train does).")
    ] = None,
    text_pair_column: Annotated[str | None, typer.Option(help="Second-sentence column (pair models).")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column (default: the run's, else detected).")] = None,
    debug: Debug = False,
) -> None:
    """Evaluate a trained run on new labelled data."""
    import distiltune

    setup_logging()
    metrics = distiltune.evaluate(
        run_dir,
        dataset,
        output=output,
        text_column=text_column,
        text_pair_column=text_pair_column,
        label_column=label_column,
    )
    print_metrics({"evaluation": metrics}, title=f"{run_dir} on {dataset}")
    typer.echo(f"Metrics written to {metrics['written_to']}")
    if metrics.get("reliability_plot"):
        typer.echo(f"Reliability diagram: {metrics['reliability_plot']}")


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to classify.")] = None,
    pair: Annotated[tuple[str, str] | None, typer.Option(help="One sentence pair: --pair PREMISE HYPOTHESIS.")] = None,
    input_file: Annotated[Path | None, typer.Option("--input", help="CSV/TSV/JSONL/Parquet file of texts.")] = None,
    output: Annotated[Path | None, typer.Option(help="Write predictions as JSONL here.")] = None,
    top_k: Annotated[int, typer.Option(help="How many labels (with scores) to return per input.")] = 1,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Inference batch size (default: the run's, else a padded-token budget on CPU, 64 on GPU)."),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="torch, or onnx to serve the run's ONNX export (see distiltune export).")
    ] = "torch",
    text_column: Annotated[
        str | None, typer.Option(help="--input's text column (default: the run's, else detected as train does).")
    ] = None,
    text_pair_column: Annotated[str | None, typer.Option(help="--input's second-sentence column (pairs).")] = None,
    debug: Debug = False,
) -> None:
    """Predict labels for texts, a sentence pair, or a file."""
    import distiltune
    from distiltune.inference.inputs import prediction_inputs

    setup_logging(quiet=True)
    classifier = distiltune.load(run_dir, backend=backend)
    inputs = prediction_inputs(classifier, texts, pair, input_file, text_column, text_pair_column)
    results = classifier.predict(inputs.texts, inputs.pairs, top_k=top_k, batch_size=batch_size)
    records: list[dict[str, Any]] = []
    for i, result in enumerate(results):
        pair_text = {"text_pair": inputs.pairs[i]} if inputs.pairs is not None else {}
        records.append({"text": inputs.texts[i], **pair_text, **result})
    if output is not None:
        from distiltune.runs import write_jsonl

        output.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(output, records)
        typer.echo(f"Wrote {len(records)} predictions to {output}")
    else:
        for record in records:
            typer.echo(json.dumps(record, ensure_ascii=False))
