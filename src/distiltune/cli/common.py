"""What every command shares: the typer app, the options several commands take with the same meaning, logging set-up
and the tables printed for metrics.

Every command imports the library inside its function: importing distiltune's packages loads torch and
transformers (seconds), and ``distiltune --help`` should not wait for them.
"""

from __future__ import annotations

import logging
import os
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="distiltune",
    help="Fine-tune, evaluate and predict with Hugging Face encoders for text classification and NLI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Click's own help layout: rich's tables cut long option names at 80 columns (--max-client-batch-s…), click's
    # wraps the help text and gives a long option name a line of its own.
    rich_markup_mode=None,
)

Debug = Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and the final table.")]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Override any config key: --set train.lr=3e-5 (repeatable)."),
]


def _print_version(value: bool) -> None:
    if value:
        from distiltune.version import __version__

        typer.echo(f"distiltune {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version and exit."),
    ] = None,
) -> None:
    """Fine-tune, evaluate and predict with Hugging Face encoders for text classification and NLI."""


def is_main_process() -> bool:
    """False in the other processes of a run started by torchrun / accelerate launch: they print nothing."""
    from distiltune.training.distributed import is_main_process

    return is_main_process()


def setup_logging(quiet: bool = False) -> None:
    from rich.logging import RichHandler

    replica = not is_main_process()
    quiet = quiet or replica
    log = logging.getLogger("distiltune")
    console_handler = next((h for h in log.handlers if isinstance(h, RichHandler)), None)
    if console_handler is None:
        console_handler = RichHandler(
            show_time=False, show_path=False, markup=False, console=make_console(stderr=True)
        )
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


def make_console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=False)


def yaml_value(text: str | None) -> Any:
    """A flag value that may be a mapping (``'{pos: 3}'``), read as --set reads values."""
    if text is None:
        return None
    from distiltune.config import parse_overrides

    return parse_overrides([f"value={text}"])["value"]


def print_metrics(metrics: Any, title: str) -> None:
    """A readable table: one column per evaluated split, one row per headline metric of the run's task.

    ``metrics``: a run's metrics.json (a dict or its typed record), or ``{name: one split's metrics}``."""
    from rich.table import Table

    from distiltune.tasks.base import SINGLE_LABEL, get_task
    from distiltune.tasks.record import LabelThresholdsReport, RunMetrics, evaluated_splits

    record = metrics if isinstance(metrics, RunMetrics) else None
    if record is None and ("validation" in metrics or "test" in metrics):
        record = RunMetrics.from_dict(metrics)
    splits = evaluated_splits(record if record is not None else metrics)
    named = (
        record.task
        if record is not None
        else next(
            (value.get("task") for value in metrics.values() if isinstance(value, dict) and value.get("task")), None
        )
    )
    task = get_task(named or SINGLE_LABEL)
    table = Table(title=title)
    table.add_column("metric")
    for split in splits:
        table.add_column(split, justify="right")
    for row in task.headline_metrics:
        values = [split.value(row) for split in splits.values()]
        if any(value is not None for value in values):
            table.add_row(row, *[fmt(value) for value in values])
    for row in ("ece", "brier", "nll"):
        values = [getattr(split.calibration, row) if split.calibration else None for split in splits.values()]
        if any(value is not None for value in values):
            table.add_row(row, *[fmt(value) for value in values])
    console = make_console()
    console.print(table)
    if record is not None and record.temperature is not None:
        temperature = record.temperature
        console.print(
            f"temperature={temperature.value:.4f} (validation NLL {temperature.nll_before:.4f} -> "
            f"{temperature.nll_after:.4f})"
        )
    if record is not None and isinstance(record.threshold, LabelThresholdsReport):
        thresholds = record.threshold
        console.print(
            f"decision thresholds tuned for {thresholds.tuned_labels} of {len(thresholds.values)} labels by "
            f"{thresholds.metric} (validation macro-F1 {thresholds.validation_f1_macro:.4f}, at 0.5 "
            f"{thresholds.validation_f1_macro_at_default:.4f}); {len(thresholds.kept_default)} too rare keep 0.5"
        )
    elif record is not None and record.threshold is not None:
        threshold = record.threshold
        console.print(
            f"decision threshold={threshold.value:.4f} on P({threshold.label}) (validation "
            f"{threshold.metric} {threshold.validation_score:.4f}, argmax {threshold.validation_score_argmax:.4f})"
        )
    facts = ("train_seconds", "train_samples_per_second", "trainable_params", "total_params", "best_epoch", "device")
    extra = (
        {}
        if record is None
        else {key: record.value(key) for key in (*facts, "precision") if key in record.model_fields_set}
    )
    if extra:
        console.print("  ".join(f"{k}={fmt(v)}" for k, v in extra.items()))
    for name, split in splits.items():
        if split.per_class and len(split.per_class) <= 20:
            detail = Table(title=f"Per class ({name})")
            for column in ("label", "precision", "recall", "f1", "support"):
                detail.add_column(column, justify="left" if column == "label" else "right")
            for label, values in split.per_class.items():
                detail.add_row(label, *[fmt(getattr(values, c)) for c in ("precision", "recall", "f1", "support")])
            console.print(detail)
        per_label = (split.model_extra or {}).get("per_label")
        if isinstance(per_label, dict) and len(per_label) <= 30:
            detail = Table(title=f"Per label ({name})")
            for column in ("label", "precision", "recall", "f1", "support"):
                detail.add_column(column, justify="left" if column == "label" else "right")
            for label, values in per_label.items():
                detail.add_row(label, *[fmt(values.get(c)) for c in ("precision", "recall", "f1", "support")])
            console.print(detail)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value < 100 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)
