"""One typed config for a run, filled from defaults, a YAML file and dotted CLI overrides.

``Config`` is a tree of dataclasses. Each package owns its section (``data.DataConfig``, ``modeling.ModelConfig``,
every method's ``MethodConfig``); the training and run sections live here, and this module composes them, which is
why it sits above those packages. Every field has a one-line docstring comment that doubles as help text.
Validation happens once, in :meth:`Config.validate`, and raises :class:`ConfigError` naming the key. The resolved
config (with preset values, the max length and the learning rate filled in: :func:`resolve_settings`) is written
to every run directory as ``config.yaml``; ``distiltune train --config runs/<run>/config.yaml`` repeats the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from distiltune.data import DEFAULT_MAX_LENGTH, DataConfig, dataset_preset
from distiltune.errors import ConfigError
from distiltune.methods import MethodConfig, get_method_config_class, method_names
from distiltune.modeling import ModelConfig

Precision = Literal["auto", "bf16", "fp16", "fp32"]
Device = Literal["auto", "cpu", "cuda", "mps"]


@dataclass
class TrainConfig:
    epochs: float = 3.0
    """Number of training epochs."""
    max_steps: int = -1
    """Stop after this many optimizer steps (overrides epochs when > 0)."""
    batch_size: int = 16
    """Training batch size per device."""
    eval_batch_size: int | None = None
    """Evaluation/prediction batch size; unset: the Trainer's evaluation uses 8 on CPU, 64 on GPU, and prediction
    batches under ``eval_batch_tokens`` (see ``serving.inference.resolve_inference_batching``)."""
    eval_batch_tokens: int | None = None
    """Padded-token budget per prediction batch (rows x longest row); unset: 2048 on CPU (512 for ONNX) when
    ``eval_batch_size`` is unset too, none on GPU; 0 turns it off."""
    lr: float | None = None
    """Peak learning rate; unset uses the method's default (full 3e-5, lora 2e-3, ...)."""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to biases and LayerNorm)."""
    warmup_fraction: float = 0.06
    """Fraction of the total steps spent warming the learning rate up linearly."""
    scheduler: str = "linear"
    """Learning-rate schedule after warmup (any transformers ``SchedulerType``: linear, cosine, constant...)."""
    gradient_accumulation_steps: int = 1
    """Accumulate gradients over this many batches per optimizer step."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    eval_strategy: Literal["epoch", "steps"] = "epoch"
    """Evaluate (and checkpoint) every epoch or every ``eval_steps`` steps."""
    eval_steps: int = 500
    """Evaluation interval in steps when ``eval_strategy`` is ``steps``."""
    logging_steps: int = 25
    """Log the training loss every N steps."""
    metric: str | None = None
    """Validation metric that picks the best checkpoint (f1_macro, accuracy, ...); preset default, else f1_macro."""
    early_stopping_patience: int | None = None
    """Stop after this many evaluations without improvement of ``metric``; unset disables early stopping."""
    seed: int = 42
    """Seed for weight init, data order and the validation split."""
    precision: Precision = "auto"
    """auto picks bf16 on hardware with native bf16 (Ampere+ GPUs, AVX512-BF16/AMX CPUs), fp16 on older GPUs,
    else fp32."""
    device: Device = "auto"
    """auto picks CUDA, then MPS, then CPU."""
    group_by_length: bool = True
    """Batch training examples of similar length together (less padding, faster)."""
    length_group_batches: int | None = 4
    """With ``group_by_length``: how many batches' worth of randomly drawn examples are sorted by length together
    and cut into batches. Fewer mixes lengths more (closer to random batches), more pads less. 4 keeps most of the
    padding saving (IMDb at 512 tokens: 85% real tokens, against 54% for random batches and 94% for transformers'
    groups) and steadies a short fine-tune: on 8 seeds of a 126-step IMDb run, -0.04 accuracy points from random
    batches' pipeline against -0.58 with transformers' groups (docs/performance.md).
    Unset: transformers' rule, ``min(50, rows // (4 x batch))`` batches."""
    dataloader_workers: int | None = None
    """DataLoader worker processes; unset: none on CPU, and on a GPU 4 only for batches of 768 rows or more, the one
    shape where workers measured faster (see ``training.speed.default_dataloader_workers``)."""
    fast_attention: bool = True
    """Turn attention-probability dropout off so PyTorch's fused SDPA kernel runs: about 3x faster training on
    CPU (SDPA falls back to its slow path whenever attention dropout is on). Hidden-layer dropout stays on."""
    compile: bool = False
    """torch.compile the model (slow warm-up; rarely worth it on CPU)."""
    dynamic_padding: bool = True
    """Pad each batch to its own longest example instead of to ``data.max_length`` (training and inference)."""
    sort_by_length: bool = True
    """Batch evaluation and prediction inputs sorted by length (less padding); results stay in input order."""
    cache_tokenized: bool = True
    """Tokenize each split once and reuse it from disk (keyed by data, tokenizer and max length); the folder is
    ``$DISTILTUNE_CACHE_DIR`` (default ~/.cache/distiltune)."""
    sdpa: bool = True
    """Use PyTorch's scaled-dot-product attention where the model supports it; false forces eager attention."""
    fused_optimizer: bool = True
    """Use the fused AdamW kernel (one kernel for all parameters); false uses the plain (foreach) AdamW."""
    async_steps: bool = False
    """Let the CPU queue the next training step while the GPU still runs this one: turns off the Trainer's
    per-step NaN/inf filter of the *logged* loss, which waits for the GPU every step. Training is the same; a NaN
    loss then shows in the logged loss instead of being averaged away. Off by default: its one measurement (H200,
    DistilBERT, 128 tokens, batch 32, 4 loader workers) ran 303 samples/s with it and 995 without
    (benchmarks/results/training_mfu_h200_2026-11-30.json), and no shape has shown it winning."""
    deterministic: bool = False
    """Ask torch for deterministic kernels (slower on GPU; CPU runs are deterministic anyway)."""
    class_weights: str | dict[str, float] = "none"
    """Cross-entropy weight per label: none, balanced (rows / (labels x the label's rows), as scikit-learn), or a
    mapping {label: weight} (unnamed labels 1). Methods that train through the Trainer; TF-IDF ignores it."""
    loss: Literal["cross_entropy", "focal"] = "cross_entropy"
    """Training loss; focal multiplies each row's cross-entropy by (1 - p of its label) ** focal_gamma, so easy
    rows count less."""
    focal_gamma: float = 2.0
    """Focal loss exponent (0 is cross-entropy)."""
    calibrate: Literal["none", "temperature"] = "none"
    """temperature: after training, fit one temperature on the validation split by NLL (saved in
    model/calibration.json, applied by every predictor, reported before and after in metrics.json); none leaves the
    probabilities as the model gives them."""
    tune_threshold: bool = False
    """Two-label tasks: after training (and calibration), pick the decision threshold on the minority label's
    probability that maximises threshold_metric on the validation split; saved and applied by every predictor."""
    threshold_metric: Literal["f1", "f1_macro", "balanced_accuracy", "accuracy"] = "f1"
    """What tune_threshold maximises; f1 is the F1 of the minority label (the thresholded one)."""
    report_to: Literal["none", "tensorboard", "mlflow", "wandb"] = "none"
    """Experiment tracker the Trainer logs to (its own integration), offline by default: TensorBoard event files in
    ``RUN_DIR/tensorboard/``, MLflow's local store, W&B with ``WANDB_MODE=offline`` unless set. The run is named
    after the run directory and the resolved config is logged as parameters (see ``training.tracking``)."""


@dataclass
class RunConfig:
    output_dir: str = "runs"
    """Folder that receives the run directory ``<timestamp>_<model>_<dataset>_<method>``."""
    name: str | None = None
    """Run directory name; unset generates one. An existing directory is never overwritten."""


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=lambda: get_method_config_class("full")())
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def validate(self) -> Config:
        """Check values that types alone cannot; raise ConfigError naming the key."""
        t = self.train
        if t.lr is not None and t.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {t.lr}.", "Set e.g. --lr 2e-5.")
        for key, value in (
            ("train.batch_size", t.batch_size),
            ("train.eval_batch_size", 1 if t.eval_batch_size is None else t.eval_batch_size),
            ("train.gradient_accumulation_steps", t.gradient_accumulation_steps),
            ("train.eval_steps", t.eval_steps),
            ("train.logging_steps", t.logging_steps),
            ("train.length_group_batches", 1 if t.length_group_batches is None else t.length_group_batches),
        ):
            if value < 1:
                raise ConfigError(f"{key} must be >= 1, got {value}.")
        if t.eval_batch_tokens is not None and t.eval_batch_tokens < 0:
            raise ConfigError(
                f"train.eval_batch_tokens must be >= 0 (0 turns the budget off), got {t.eval_batch_tokens}."
            )
        if t.epochs <= 0 and t.max_steps <= 0:
            raise ConfigError(f"train.epochs must be > 0 (got {t.epochs}) unless train.max_steps is set.")
        if not 0 <= t.warmup_fraction < 1:
            raise ConfigError(f"train.warmup_fraction must be in [0, 1), got {t.warmup_fraction}.")
        if t.weight_decay < 0:
            raise ConfigError(f"train.weight_decay must be >= 0, got {t.weight_decay}.")
        if t.early_stopping_patience is not None and t.early_stopping_patience < 1:
            raise ConfigError(f"train.early_stopping_patience must be >= 1, got {t.early_stopping_patience}.")
        if t.focal_gamma < 0:
            raise ConfigError(f"train.focal_gamma must be >= 0, got {t.focal_gamma}.")
        _check_class_weights(t.class_weights)
        self.data.validate()
        self.method.validate()
        self.model.validate()
        if self.model.head != "auto" and not self.method.supports_custom_head:
            raise ConfigError(
                f"model.head={self.model.head} does not work with method '{self.method.name}'.",
                "Use --head auto, or the full, lora or head method.",
            )
        return self

    # --- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["method"] = {"name": self.method.name, **dataclasses.asdict(self.method)}
        return out

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> Config:
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a mapping of sections (data, model, method, train, run).")
        _check_keys(raw, [f.name for f in dataclasses.fields(cls)], source)
        method_raw = dict(raw.get("method") or {})
        method_name = method_raw.pop("name", "full")
        method_cls = get_method_config_class(method_name)
        return cls(
            data=_build(DataConfig, raw.get("data") or {}, f"{source}: data"),
            model=_build(ModelConfig, raw.get("model") or {}, f"{source}: model"),
            method=_build(method_cls, method_raw, f"{source}: method"),
            train=_build(TrainConfig, raw.get("train") or {}, f"{source}: train"),
            run=_build(RunConfig, raw.get("run") or {}, f"{source}: run"),
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> Config:
        return cls.from_dict(read_yaml_file(path), source=str(path))


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
) -> Config:
    """Build a validated Config: defaults, then the YAML file at ``path``, then dotted ``overrides``.

    Overrides are ``"section.key=value"`` strings (values parsed as YAML, so ``3e-5``, ``true`` and
    ``[a, b]`` work) or a ``{"section.key": value}`` mapping. ``method.name`` switches the method and
    keeps the options that the new method also has.
    """
    raw = Config.from_yaml(path).to_dict() if path is not None else Config().to_dict()
    items = parse_overrides(overrides)
    if "method.name" in items:
        new_name = items.pop("method.name")
        if new_name != raw["method"].get("name"):
            allowed = {f.name for f in dataclasses.fields(get_method_config_class(str(new_name)))}
            raw["method"] = {"name": new_name, **{k: v for k, v in raw["method"].items() if k in allowed}}
    for dotted, value in items.items():
        section, _, key = dotted.partition(".")
        _check_keys({section: None}, list(raw), "override")
        if not key:
            raise ConfigError(f"Override '{dotted}' needs a key: use section.key=value, e.g. train.lr=3e-5.")
        raw[section][key] = value
    return Config.from_dict(raw, source="config").validate()


def parse_overrides(overrides: list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """``["train.lr=3e-5", ...]`` (values parsed as YAML) or a ``{"train.lr": 3e-5}`` mapping, as one mapping."""
    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    items: dict[str, Any] = {}
    for item in overrides:
        dotted, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"Override '{item}' has no '='.", "Use section.key=value, e.g. --set train.lr=3e-5.")
        try:
            items[dotted.strip()] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            items[dotted.strip()] = text
    return items


def flatten(raw: dict[str, Any], skip: str | None = None) -> dict[str, Any]:
    """A config dict (``Config.to_dict()``) as dotted overrides ``{"section.key": value}``, leaving out ``skip``."""
    return {
        f"{section}.{key}": value
        for section, values in raw.items()
        if section != skip
        for key, value in values.items()
    }


def with_overrides(config: Config, overrides: list[str] | dict[str, Any] | None) -> Config:
    """A Config object with dotted overrides applied on top (validated)."""
    return load_config(None, {**flatten(config.to_dict()), **parse_overrides(overrides)})


def _check_keys(raw: dict[str, Any], allowed: list[str], source: str) -> None:
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
            hint = f"Did you mean '{close[0]}'?" if close else f"Valid keys: {', '.join(allowed)}."
            raise ConfigError(f"{source}: unknown key '{key}'.", hint)


def _build(cls: type, raw: dict[str, Any], source: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping, got {type(raw).__name__}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(raw, list(fields), source)
    hints = typing.get_type_hints(cls)
    values = {key: _coerce(value, hints[key], f"{source}.{key}") for key, value in raw.items()}
    return cls(**values)


_BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "1": True}
_BOOLEAN_WORDS |= {"false": False, "no": False, "off": False, "0": False}


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against a field annotation, converting where it is lossless (int -> float)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(err)
        raise errors[0]
    if origin is Literal:
        if value not in args:
            choices = ", ".join(map(str, args))
            raise ConfigError(f"{key} must be one of {choices}; got '{value}'.")
        return value
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list, got '{value}'.")
        return [_coerce(v, args[0], key) for v in value] if args else list(value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        # Python-API overrides arrive as written ({"train.sdpa": "false"}); accept what YAML would.
        if isinstance(value, str) and value.strip().lower() in _BOOLEAN_WORDS:
            return _BOOLEAN_WORDS[value.strip().lower()]
        raise ConfigError(f"{key} must be true or false, got {value!r}.")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key} must be a number, got '{value}'.")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return int(value.strip())
        raise ConfigError(f"{key} must be an integer, got {value!r}.")
    if annotation is str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key} must be a string, got '{value}'.")
    return value


def _check_class_weights(spec: str | dict[str, float]) -> None:
    """What ``train.class_weights`` can be told without the labels (unknown labels are refused once the data is
    loaded, before the model: ``training.losses.resolve_class_weights``)."""
    if isinstance(spec, str):
        if spec.strip().lower() not in ("none", "balanced"):
            raise ConfigError(
                f"train.class_weights must be none, balanced or a mapping {{label: weight}}; got '{spec}'.",
                "For example --set train.class_weights=balanced or --set 'train.class_weights={pos: 3}'.",
            )
        return
    if not isinstance(spec, dict):
        raise ConfigError(
            f"train.class_weights must be none, balanced or a mapping {{label: weight}}; got {type(spec).__name__}."
        )
    for label, weight in spec.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise ConfigError(
                f"train.class_weights: the weight of '{label}' must be a positive number, got {weight!r}."
            )


def read_yaml_file(path: str | Path) -> Any:
    """The parsed contents of a YAML config file ({} when empty), or a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}.", "Check the path passed to --config.")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({_first_line(err)}).") from None


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


# --- settings resolved once ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSettings:
    """What a config leaves open, resolved once before anything trains: every reader (training, evaluation,
    prediction, export, compare) takes these values from the resolved config this produces."""

    max_length: int
    """Tokens per example: the configured or preset length (else 256), capped by what the model holds."""
    lr: float | None
    """The configured learning rate, else the method's default (None for methods that do not train by gradient)."""
    metric: str
    """The validation metric that picks the best checkpoint: configured, else the preset's, else f1_macro."""
    long_text: str = "head"
    """How texts longer than ``max_length`` are read: configured, else the preset's, else head."""

    def apply(self, config: Config) -> Config:
        """``config`` with these values written in: what goes to ``config.yaml``."""
        return dataclasses.replace(
            config,
            data=dataclasses.replace(config.data, max_length=self.max_length, long_text=self.long_text),
            train=dataclasses.replace(config.train, lr=self.lr, metric=self.metric),
        )


def resolve_settings(
    config: Config, model_limit: int | None, uses_encoder: bool = True, reserved_positions: int | None = None
) -> RunSettings:
    """Resolve the max length, the learning rate, the selection metric and the long-text reading of ``config``.

    ``model_limit`` is the longest input the encoder accepts (``modeling.model_max_length``; None when there is no
    encoder); the positions the method reserves (soft-prompt tokens; ``reserved_positions`` overrides
    ``config.method``'s) come off it. An explicit ``data.max_length`` above the limit is an error; a preset's or the
    default is capped silently.
    """
    preset = dataset_preset(config.data.dataset)
    wanted = config.data.max_length or (preset.max_length if preset else None) or DEFAULT_MAX_LENGTH
    max_length = wanted
    if uses_encoder and model_limit is not None:
        reserved = config.method.reserved_positions() if reserved_positions is None else reserved_positions
        limit = model_limit - reserved
        if wanted > limit:
            if config.data.max_length is not None:
                raise ConfigError(
                    f"data.max_length {wanted} exceeds the model's limit of {limit} tokens.",
                    f"Use --max-length {limit} or less.",
                )
            max_length = limit
    lr = config.train.lr if config.train.lr is not None else config.method.default_lr
    metric = config.train.metric or (preset.metric if preset else DEFAULT_METRIC)
    long_text = config.data.long_text or (preset.long_text if preset else "head")
    # The resolved reading against the resolved length: a stride or head_tokens >= the max length fails here, before
    # anything trains, also when the length came from a preset or the model's limit.
    dataclasses.replace(config.data, long_text=long_text).long_text_options().validate(max_length)
    return RunSettings(max_length=max_length, lr=lr if uses_encoder else None, metric=metric, long_text=long_text)


#: The best-checkpoint metric when neither the config nor a preset names one.
DEFAULT_METRIC = "f1_macro"

__all__ = [
    "Config",
    "DataConfig",
    "ModelConfig",
    "RunConfig",
    "RunSettings",
    "TrainConfig",
    "flatten",
    "load_config",
    "method_names",
    "parse_overrides",
    "resolve_settings",
    "with_overrides",
]
