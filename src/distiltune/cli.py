"""The ``distiltune`` command line: a thin typer layer that parses flags and calls the Python API.

User errors (``DistiltuneError``) print as one line on stderr with exit code 2; ``--debug`` shows the traceback.
Every command imports the library inside its function: importing distiltune's packages loads torch and
transformers (seconds), and ``distiltune --help`` should not wait for them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from distiltune.errors import DistiltuneError

app = typer.Typer(
    name="distiltune",
    help="Fine-tune, evaluate and predict with Hugging Face encoders for text classification and NLI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Debug = Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")]
REPORT_TO_HELP = (
    "Experiment tracker: none, tensorboard (RUN_DIR/tensorboard), mlflow (local store unless MLFLOW_TRACKING_URI), "
    "wandb (offline unless WANDB_MODE)."
)

# Options that several commands take with the same meaning.
DatasetOption = Annotated[str | None, typer.Option(help="Preset, hub id name[:config], file or folder.")]
ModelOption = Annotated[str | None, typer.Option(help="Hub id, local directory, or 'minilm' (offline).")]
TextColumnOption = Annotated[str | None, typer.Option(help="Text column.")]
TextPairColumnOption = Annotated[str | None, typer.Option(help="Second-sentence column (pairs/NLI).")]
LabelColumnOption = Annotated[str | None, typer.Option(help="Label column.")]
ReportToOption = Annotated[str | None, typer.Option(help=REPORT_TO_HELP)]
PoolingOption = Annotated[str | None, typer.Option(help="Pooling of the mlp head: cls or mean.")]
HeadOption = Annotated[str | None, typer.Option(help="Classification head: auto (the model's own) or mlp.")]
MaxLengthOption = Annotated[int | None, typer.Option(help="Max tokens per example.")]
EpochsOption = Annotated[float | None, typer.Option(help="Training epochs.")]
BatchSizeOption = Annotated[int | None, typer.Option(help="Training batch size.")]


def main() -> None:
    """Console-script entry point."""
    debug = "--debug" in sys.argv
    try:
        app()
    except DistiltuneError as err:
        if debug:
            raise
        if _is_main_process():  # every process of a multi-process run has the same error: say it once
            typer.echo(f"error: {err.one_line()}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt as err:
        # A run that was interrupted says where its checkpoint is and how to resume (distiltune.resume).
        if _is_main_process():
            typer.echo(str(err) or "interrupted", err=True)
        sys.exit(130)


def _is_main_process() -> bool:
    """False in the other processes of a run started by torchrun / accelerate launch: they print nothing."""
    from distiltune.training.distributed import is_main_process

    return is_main_process()


def _setup_logging(quiet: bool = False) -> None:
    from rich.logging import RichHandler

    replica = not _is_main_process()
    quiet = quiet or replica
    log = logging.getLogger("distiltune")
    console_handler = next((h for h in log.handlers if isinstance(h, RichHandler)), None)
    if console_handler is None:
        console_handler = RichHandler(show_time=False, show_path=False, markup=False, console=_console(stderr=True))
        console_handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(console_handler)
    # Quietness belongs to the console handler: the logger itself stays at INFO so a run's train.log is complete.
    # The other processes of a multi-process run say nothing at all: the main process speaks for the run.
    console_handler.setLevel(logging.CRITICAL + 1 if replica else logging.WARNING if quiet else logging.INFO)
    log.setLevel(logging.INFO)
    log.propagate = False
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    # One bar during training (distiltune's, or none with --quiet): not transformers' weight-loading and
    # shard-writing bars, nor datasets' mapping bars.
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=False)


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

    _setup_logging(quiet)
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
        "train.class_weights": _yaml_value(class_weights),
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
        if _is_main_process():
            typer.echo(str(err), err=True)
        raise typer.Exit(130) from None
    if _is_main_process():
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


def _yaml_value(text: str | None) -> Any:
    """A flag value that may be a mapping (``'{pos: 3}'``), read as --set reads values."""
    if text is None:
        return None
    from distiltune.config import parse_overrides

    return parse_overrides([f"value={text}"])["value"]


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

    _setup_logging()
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
    from distiltune.errors import DataError

    _setup_logging(quiet=True)
    classifier = distiltune.load(run_dir, backend=backend)
    pairs: list[str] | None = None
    records: list[dict[str, Any]] = []
    if input_file is not None:
        from distiltune.data import read_predict_input

        frame = read_predict_input(
            input_file, classifier.config.data, classifier.is_pair, text_column, text_pair_column
        )
        text_list = frame["text"].tolist()
        pairs = frame["text_pair"].tolist() if "text_pair" in frame.columns else None
    elif pair is not None:
        text_list, pairs = [pair[0]], [pair[1]]
    elif texts:
        text_list = list(texts)
    else:
        raise DataError("Nothing to predict.", "Pass texts, --pair A B, or --input FILE.")
    if classifier.is_pair and pairs is None:
        raise DataError("This model was trained on sentence pairs.", "Use --pair A B or an --input file with pairs.")
    results = classifier.predict(text_list, pairs, top_k=top_k, batch_size=batch_size)
    for i, result in enumerate(results):
        record = {"text": text_list[i], **({"text_pair": pairs[i]} if pairs is not None else {}), **result}
        records.append(record)
    if output is not None:
        from distiltune.runs import write_jsonl

        output.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(output, records)
        typer.echo(f"Wrote {len(records)} predictions to {output}")
    else:
        for record in records:
            typer.echo(json.dumps(record, ensure_ascii=False))


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

    _setup_logging()
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


@app.command()
def serve(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    backend: Annotated[str, typer.Option(help="torch, or onnx: the run's ONNX export (int8 when present).")] = "torch",
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the server (use an API key).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    api_key_env: Annotated[
        str | None, typer.Option(help="Require 'Authorization: Bearer <key>', the key read from this env variable.")
    ] = None,
    api_key_file: Annotated[Path | None, typer.Option(help="Like --api-key-env, the key read from a file.")] = None,
    workers: Annotated[int, typer.Option(help="Server processes, each with its own model copy.")] = 1,
    threads: Annotated[
        int | None, typer.Option(help="torch threads per process (default: all cores / --workers).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps (torch backend).")] = "auto",
    max_batch_size: Annotated[int, typer.Option(help="Inputs merged into one model call.")] = 32,
    max_batch_tokens: Annotated[int, typer.Option(help="Padded tokens (rows x longest row) per model call.")] = 8192,
    max_wait_ms: Annotated[
        float, typer.Option(help="How long a batch that is not full waits for more requests while the model idles.")
    ] = 2.0,
    max_client_batch_size: Annotated[int, typer.Option(help="Inputs per request (more: 413).")] = 32,
    max_input_chars: Annotated[int, typer.Option(help="Characters per text (more: 413).")] = 50_000,
    max_concurrent_requests: Annotated[
        int, typer.Option(help="Requests in flight per process; past it 429 with Retry-After.")
    ] = 128,
    payload_limit: Annotated[int, typer.Option(help="Request body bytes (more: 413).")] = 2_000_000,
    auto_truncate: Annotated[
        bool,
        typer.Option(
            "--auto-truncate/--no-auto-truncate",
            help="Truncate over-long inputs of requests that do not set 'truncate' (off: 413 for them).",
        ),
    ] = True,
    graceful_timeout: Annotated[
        float, typer.Option(help="Seconds in-flight requests get to finish after SIGTERM.")
    ] = 30.0,
    keep_alive: Annotated[
        int, typer.Option(help="Seconds an idle connection stays open (longer than clients' and balancers' own).")
    ] = 75,
    debug: Debug = False,
) -> None:
    """Serve a run over HTTP: POST /predict (text-embeddings-inference's shape), /health, /info, /metrics, /docs."""
    from distiltune.serving.server import ServeSettings, load_classifier, read_api_key, serve

    _setup_logging(quiet=True)  # no progress bars while loading; the server then logs through its own handler
    settings = ServeSettings(
        run_dir=str(run_dir),
        backend=backend,
        device=device,
        host=host,
        port=port,
        workers=workers,
        threads=threads,
        max_batch_size=max_batch_size,
        max_batch_tokens=max_batch_tokens,
        max_wait_ms=max_wait_ms,
        max_client_batch_size=max_client_batch_size,
        max_input_chars=max_input_chars,
        max_concurrent_requests=max_concurrent_requests,
        payload_limit=payload_limit,
        auto_truncate=auto_truncate,
        graceful_timeout=graceful_timeout,
        keep_alive=keep_alive,
        api_key_env=api_key_env,
        api_key_file=str(api_key_file) if api_key_file else None,
    ).validate()
    read_api_key(settings)  # a missing key fails now, not after the model has loaded
    # Loaded here so a bad run directory is a one-line error; worker processes (--workers N) load their own copy.
    classifier = load_classifier(settings)
    serve(settings, classifier if workers == 1 else None)


@app.command()
def demo(
    epochs: Annotated[float, typer.Option(help="Training epochs.")] = 2.0,
    output_dir: Annotated[str, typer.Option(help="Where the run directory goes.")] = "runs",
    debug: Debug = False,
) -> None:
    """Offline demo: fine-tune the packaged MiniLM on 1,500 bundled IMDb reviews, report test metrics and
    classify a few new sentences. Needs no network."""
    from distiltune.training.demo import DEMO_SENTENCES, DEMO_TITLE, run_demo

    _setup_logging()
    result = run_demo(epochs, output_dir)
    run = result.run
    print_metrics(run.metrics, title=DEMO_TITLE)
    console = _console()
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

    _setup_logging(quiet)
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

    _setup_logging(quiet=True)
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
    console = Console(soft_wrap=False, width=max(_console().width, natural_width))
    console.print(table)
    for row in comparison.table:
        if row["error"]:
            console.print(f"[red]{escape(row_name(row))} failed[/red]: {escape(row['error'])}", highlight=False)
    recommendation = getattr(comparison, "recommendation", None)
    if recommendation:
        console.print(f"Recommendation: {escape(recommendation['line'])}", highlight=False)
    typer.echo(f"Report: {comparison.report}")


@app.command("tune")
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
        bool, typer.Option("--keep-checkpoints", help="Keep each trial's checkpoints/ (its model/ is always kept).")
    ] = False,
    dataset: DatasetOption = None,
    model: ModelOption = None,
    method: Annotated[str | None, typer.Option(help="Tuning method: full, lora, prompt, prefix, head.")] = None,
    epochs: Annotated[float | None, typer.Option(help="Training epochs (when not searched).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training batch size (when not searched).")] = None,
    max_length: MaxLengthOption = None,
    seed: Annotated[int | None, typer.Option(help="Training seed of every trial.")] = None,
    report_to: ReportToOption = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override any config key: --set train.lr=3e-5.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and the final table.")] = False,
    debug: Debug = False,
) -> None:
    """Search hyperparameters with Optuna (TPE, pruning); each trial is a run. Writes best.yaml, trials.csv, plots
    and report.html in tune/<timestamp>_<study>/."""
    import distiltune
    from distiltune.config import parse_overrides

    _setup_logging(quiet)
    import optuna

    # distiltune logs each trial in one line (tracebacks go to tune.log); Optuna would repeat it with a traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    flags = {
        "data.dataset": dataset,
        "model.name": model,
        "method.name": method,
        "train.epochs": epochs,
        "train.batch_size": batch_size,
        "data.max_length": max_length,
        "train.seed": seed,
        "train.report_to": report_to,
    }
    overrides = {key: value for key, value in flags.items() if value is not None}
    overrides.update(parse_overrides(set_ or []))
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
        table.add_row(str(row["number"]), *[format(v, ".4g") if isinstance(v, float) else _fmt(v) for v in values])
    _console().print(table)
    if result.best_config is not None:
        typer.echo(f"Best: trial {result.best_trial}. Repeat it with: distiltune train --config {result.best_config}")
    typer.echo(f"Report: {result.report}")


@app.command("presets")
def list_presets() -> None:
    """List the dataset presets."""
    from distiltune.presets import presets

    for name, preset in presets().items():
        typer.echo(f"{name:16} {preset.source:22} {preset.description}")


def print_metrics(metrics: dict[str, Any], title: str) -> None:
    """A readable table: one column per evaluated split, one row per headline metric."""
    from rich.table import Table

    splits = [name for name, value in metrics.items() if isinstance(value, dict) and "accuracy" in value]
    table = Table(title=title)
    table.add_column("metric")
    for split in splits:
        table.add_column(split, justify="right")
    rows = [
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "f1_weighted",
        "precision",
        "recall",
        "f1",
        "samples",
    ]
    for row in rows:
        if any(row in metrics[s] for s in splits):
            table.add_row(row, *[_fmt(metrics[s].get(row)) for s in splits])
    for row in ("ece", "brier", "nll"):
        values = [(metrics[s].get("calibration") or {}).get(row) for s in splits]
        if any(value is not None for value in values):
            table.add_row(row, *[_fmt(value) for value in values])
    console = _console()
    console.print(table)
    temperature, threshold = metrics.get("temperature"), metrics.get("threshold")
    if isinstance(temperature, dict):
        console.print(
            f"temperature={temperature['value']:.4f} (validation NLL {temperature['nll_before']:.4f} -> "
            f"{temperature['nll_after']:.4f})"
        )
    if isinstance(threshold, dict):
        console.print(
            f"decision threshold={threshold['value']:.4f} on P({threshold['label']}) (validation "
            f"{threshold['metric']} {threshold['validation_score']:.4f}, argmax "
            f"{threshold['validation_score_argmax']:.4f})"
        )
    extra = {
        k: metrics.get(k)
        for k in (
            "train_seconds",
            "train_samples_per_second",
            "trainable_params",
            "total_params",
            "best_epoch",
            "device",
            "precision",
        )
        if k in metrics
    }
    if extra:
        console.print("  ".join(f"{k}={_fmt(v)}" for k, v in extra.items()))
    for split in splits:
        per_class = metrics[split].get("per_class")
        if per_class and len(per_class) <= 20:
            detail = Table(title=f"Per class ({split})")
            for column in ("label", "precision", "recall", "f1", "support"):
                detail.add_column(column, justify="left" if column == "label" else "right")
            for label, values in per_class.items():
                detail.add_row(label, *[_fmt(values[c]) for c in ("precision", "recall", "f1", "support")])
            console.print(detail)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value < 100 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)
