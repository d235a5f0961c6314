"""Fine-tuning: ``distiltune train`` (one process, or launched with torchrun / accelerate)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from distiltune.cli.common import (
    BatchSizeOption,
    DatasetOption,
    Debug,
    EpochsOption,
    HeadOption,
    LabelColumnOption,
    MaxLengthOption,
    ModelOption,
    PoolingOption,
    ReportToOption,
    TextColumnOption,
    TextPairColumnOption,
    app,
    is_main_process,
    print_metrics,
    setup_logging,
    yaml_value,
)


@app.command()
def train(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config (e.g. a run's config.yaml).")
    ] = None,
    dataset: DatasetOption = None,
    model: ModelOption = None,
    method: Annotated[
        str | None, typer.Option(help="Tuning method: full, lora, prompt, prefix, head (options: --set method.KEY=V).")
    ] = None,
    head: HeadOption = None,
    pooling: PoolingOption = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="LoRA: also write model/merged/ that plain transformers loads.")
    ] = False,
    epochs: EpochsOption = None,
    batch_size: BatchSizeOption = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default: the method's).")] = None,
    max_length: MaxLengthOption = None,
    text_column: TextColumnOption = None,
    text_pair_column: TextPairColumnOption = None,
    label_column: LabelColumnOption = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    long_text: Annotated[
        str | None,
        typer.Option(
            help="How texts longer than --max-length are read: head, tail, head_tail or chunks (all of it in "
            "windows; --set data.stride=N, data.max_windows=N, data.window_aggregation=mean|max). Default: the "
            "preset's, else head."
        ),
    ] = None,
    class_weights: Annotated[
        str | None,
        typer.Option(help="Loss weight per label: none, balanced, or a mapping like '{pos: 3}' (others 1)."),
    ] = None,
    loss: Annotated[
        str | None, typer.Option(help="Training loss: cross_entropy or focal (--set train.focal_gamma=2).")
    ] = None,
    calibrate: Annotated[
        str | None,
        typer.Option(
            help="temperature: fit one temperature on the validation split after training; every predictor applies it."
        ),
    ] = None,
    tune_threshold: Annotated[
        bool,
        typer.Option(
            "--tune-threshold",
            help="Two labels: pick the decision threshold on the minority label that maximises its F1 on the "
            "validation split (--set train.threshold_metric=...); every predictor applies it.",
        ),
    ] = False,
    output_dir: Annotated[str | None, typer.Option(help="Where run directories go (default runs/).")] = None,
    name: Annotated[
        str | None, typer.Option(help="Run directory name (default: timestamp_model_dataset_method).")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override any config key: --set train.lr=3e-5.")
    ] = None,
    compile_model: Annotated[
        bool,
        typer.Option(
            "--compile", help="torch.compile the model (opt-in: minutes of warm-up, rarely worth it on CPU)."
        ),
    ] = False,
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
    deterministic: Annotated[
        bool | None, typer.Option("--deterministic", help="Use torch's deterministic kernels (slower on GPU).")
    ] = None,
    report_to: ReportToOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and the final table.")] = False,
    debug: Debug = False,
) -> None:
    """Fine-tune a model and write a run directory (model, metrics, history, predictions, plots)."""
    if accelerate_config is not None or (nproc is not None and nproc != 1):
        _launch(nproc, accelerate_config)
    import distiltune

    setup_logging(quiet)
    flags = {
        "data.dataset": dataset,
        "model.name": model,
        "method.name": method,
        "method.merge": True if merge else None,
        "model.head": head,
        "model.pooling": pooling,
        "train.epochs": epochs,
        "train.batch_size": batch_size,
        "train.lr": lr,
        "data.max_length": max_length,
        "data.text_column": text_column,
        "data.text_pair_column": text_pair_column,
        "data.label_column": label_column,
        "train.seed": seed,
        "data.long_text": long_text,
        "train.class_weights": yaml_value(class_weights),
        "train.loss": loss,
        "train.calibrate": calibrate,
        "train.tune_threshold": True if tune_threshold else None,
        "run.output_dir": output_dir,
        "run.name": name,
        "train.compile": True if compile_model else None,
        "train.deterministic": deterministic,
        "train.report_to": report_to,
    }
    from distiltune.config import parse_overrides
    from distiltune.training.interrupts import RunInterrupted

    overrides = {key: value for key, value in flags.items() if value is not None}
    overrides.update(parse_overrides(set_ or []))

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
