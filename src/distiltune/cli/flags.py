"""The flags that set config keys, declared once (:data:`FLAGS`) and shared by ``train``, ``compare`` and ``tune``.

A command picks the flags it offers with :func:`config_flags`; its function then receives one ``overrides`` mapping
(dotted config key to value) holding only the flags that were given. A flag left out is not an override, so the
value of a ``--config`` file (or the config's default) stands; a boolean flag is ``--x/--no-x`` for the same reason:
``--no-x`` can turn off what a YAML file turned on.

``--help`` shows each flag's default. The defaults are written here as text rather than read from
``distiltune.config``, which imports torch (seconds): ``distiltune --help`` must stay fast. tests/cli/test_cli.py
compares every default shown with the config's own, so the two cannot drift apart.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer

from distiltune.cli.common import yaml_value

Command = TypeVar("Command", bound=Callable[..., Any])

#: The parameter of a command function that receives the config overrides of its flags.
OVERRIDES = "overrides"


@dataclass(frozen=True)
class ConfigFlag:
    """One command-line flag that sets one config key."""

    key: str
    """The dotted config key the flag sets, e.g. ``train.epochs``."""
    type: type
    """str, int, float or bool (a bool is a ``--x/--no-x`` pair)."""
    help: str
    default: str
    """What the config does when the flag is left out, as ``--help`` shows it: the config's default (a value), or how
    an unset key is resolved (``the method's``)."""
    name: str | None = None
    """The flag's name without the dashes when it is not the key's last part (``model`` for ``model.name``)."""
    parse: Callable[[str], Any] | None = None
    """Turns the flag's text into the config value (default: the text, converted to :attr:`type`)."""

    @property
    def option(self) -> str:
        return "--" + (self.name or self.key.rsplit(".", 1)[-1]).replace("_", "-")

    @property
    def parameter_name(self) -> str:
        return self.option[2:].replace("-", "_")

    def parameter(self) -> inspect.Parameter:
        """The typer parameter of this flag: its value is None when the flag is left out."""
        declaration = f"{self.option}/--no-{self.option[2:]}" if self.type is bool else self.option
        help_text = f"{self.help}  [default: {self.default}]"
        option = typer.Option(declaration, help=help_text, show_default=False)
        return inspect.Parameter(
            self.parameter_name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[self.type | None, option],
        )

    def value(self, given: Any) -> Any:
        return self.parse(given) if self.parse is not None else given


_FLAGS = [
    ConfigFlag(
        "data.dataset",
        str,
        "Preset (see distiltune presets), hub id name[:config], CSV/TSV/JSONL/Parquet file or folder.",
        "imdb",
    ),
    ConfigFlag(
        "model.name", str, "Hub id, local directory, or 'minilm' (offline).", "distilbert-base-uncased", "model"
    ),
    ConfigFlag(
        "method.name",
        str,
        "Tuning method: see distiltune methods; its options with --set method.KEY=V.",
        "full",
        "method",
    ),
    ConfigFlag("model.head", str, "Classification head: auto (the model's own) or mlp.", "auto"),
    ConfigFlag("model.pooling", str, "Pooling of the mlp head: cls or mean.", "cls"),
    ConfigFlag("method.merge", bool, "LoRA: also write model/merged/ that plain transformers loads.", "off"),
    ConfigFlag("train.epochs", float, "Training epochs.", "3"),
    ConfigFlag("train.batch_size", int, "Training batch size (per process).", "16"),
    ConfigFlag("train.lr", float, "Learning rate.", "the method's (see distiltune methods)"),
    ConfigFlag(
        "data.max_length", int, "Max tokens per example.", "the preset's, else 256; at most what the model holds"
    ),
    ConfigFlag("data.text_column", str, "Text column.", "detected"),
    ConfigFlag("data.text_pair_column", str, "Second-sentence column (pairs/NLI).", "detected"),
    ConfigFlag("data.label_column", str, "Label column.", "detected"),
    ConfigFlag(
        "data.multi_label",
        bool,
        "Each text has any number of labels (sigmoid per label, a threshold per label).",
        "detected (list-valued labels, --label-columns or --label-separator)",
    ),
    ConfigFlag(
        "data.label_columns",
        str,
        "Multi-label data with one 0/1 column per label: those columns, comma-separated (their names are the labels).",
        "none",
    ),
    ConfigFlag("data.label_separator", str, "Multi-label cells written as one string ('4,27'): the separator.", "','"),
    ConfigFlag(
        "data.label_names_file",
        str,
        "Text file naming integer labels 0..n-1, one name per line (relative: also looked up in the data folder).",
        "none",
    ),
    ConfigFlag(
        "data.column_names",
        str,
        "CSV/TSV files without a header row: their column names, comma-separated (e.g. text,labels,id).",
        "the file's header row",
    ),
    ConfigFlag("train.seed", int, "Random seed (compare: the first seed, and the validation split's).", "42"),
    ConfigFlag(
        "data.long_text",
        str,
        "How texts longer than --max-length are read: head, tail, head_tail or chunks (all of it in windows; --set "
        "data.stride=N, data.max_windows=N, data.window_aggregation=mean|max).",
        "the preset's, else head",
    ),
    ConfigFlag(
        "train.class_weights",
        str,
        "Loss weight per label: none, balanced, or a mapping like '{pos: 3}' (others 1).",
        "none",
        parse=yaml_value,
    ),
    ConfigFlag(
        "train.loss", str, "Training loss: cross_entropy or focal (--set train.focal_gamma=2).", "cross_entropy"
    ),
    ConfigFlag(
        "train.calibrate",
        str,
        "none, or temperature: fit one temperature on the validation split after training; every predictor "
        "applies it.",
        "none",
    ),
    ConfigFlag(
        "train.tune_threshold",
        bool,
        "Two labels: pick the decision threshold on the minority label that maximises its F1 on the validation "
        "split; multi-label: one threshold per label, each maximising that label's F1 (--set "
        "train.threshold_metric=...). Every predictor applies it.",
        "off",
    ),
    ConfigFlag("run.output_dir", str, "Where run directories go.", "runs"),
    ConfigFlag("run.name", str, "Run directory name.", "timestamp_model_dataset_method"),
    ConfigFlag("train.compile", bool, "torch.compile the model (minutes of warm-up, rarely worth it on CPU).", "off"),
    ConfigFlag("train.deterministic", bool, "Use torch's deterministic kernels (slower on GPU).", "off"),
    ConfigFlag(
        "train.report_to",
        str,
        "Experiment tracker: none, tensorboard (RUN_DIR/tensorboard), mlflow (local store unless "
        "MLFLOW_TRACKING_URI), wandb (offline unless WANDB_MODE).",
        "none",
    ),
]

#: Every config flag, by its name without the dashes (``max-length``).
FLAGS: dict[str, ConfigFlag] = {flag.option[2:]: flag for flag in _FLAGS}


def config_flags(names: Sequence[str]) -> Callable[[Command], Command]:
    """Offer the flags ``names`` (keys of :data:`FLAGS`) on a typer command.

    The command's ``overrides`` parameter is replaced, in its place in the signature (so in ``--help``), by one
    option per flag; the command is called with ``overrides``: ``{config key: value}`` of the flags given.
    """
    flags = [FLAGS[name] for name in names]

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        parameters = list(signature.parameters.values())
        names_taken = {parameter.name for parameter in parameters}
        clashes = [flag.parameter_name for flag in flags if flag.parameter_name in names_taken]
        if OVERRIDES not in names_taken or clashes:
            raise TypeError(f"{command.__name__}: needs an '{OVERRIDES}' parameter and no parameter named {clashes}")
        at = [parameter.name for parameter in parameters].index(OVERRIDES)
        # Typer reads the options from this signature and calls with keywords; all keyword-only, as a signature
        # allows no positional parameter after the flags'.
        own = [parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY) for parameter in parameters]
        new_parameters = [*own[:at], *(flag.parameter() for flag in flags), *own[at + 1 :]]

        @functools.wraps(command)
        def with_overrides(**values: Any) -> Any:
            given = {flag.key: flag.value(values.pop(flag.parameter_name)) for flag in flags}
            values[OVERRIDES] = {key: value for key, value in given.items() if value is not None}
            return command(**values)

        with_overrides.__signature__ = signature.replace(parameters=new_parameters)  # type: ignore[attr-defined]
        return with_overrides  # type: ignore[return-value]

    return decorate


__all__ = ["FLAGS", "ConfigFlag", "config_flags"]
