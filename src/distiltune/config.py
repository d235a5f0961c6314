"""One typed config for a run, filled from defaults, a YAML file and dotted CLI overrides.

``Config`` is a tree of pydantic models (:class:`~distiltune.schema.ConfigModel`: unknown keys refused, one docstring
per field, validation in the model). Each package owns its section (``data.DataConfig``, ``modeling.ModelConfig``,
every method's ``MethodConfig``); the training and run sections live here, and this module composes them, which is
why it sits above those packages. The ``method`` section is the registered method's config, chosen by its ``name``.
:func:`load_config` is the one way in (a Config, a YAML file, a mapping or the defaults, plus dotted overrides); a
mistake is a one-line :class:`ConfigError` naming the key. The resolved config (with preset values, the max length
and the learning rate filled in: :func:`resolve_settings`) is written to every run directory as ``config.yaml``;
``distiltune train --config runs/<run>/config.yaml`` repeats the run. ``distiltune config schema`` prints
:meth:`Config.model_json_schema` for editors.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import Field, SerializeAsAny, ValidationInfo, field_serializer, field_validator, model_validator

from distiltune.data import DEFAULT_MAX_LENGTH, DataConfig, dataset_preset
from distiltune.errors import ConfigError
from distiltune.methods import MethodConfig, get_method_config_class, method_names
from distiltune.modeling import ModelConfig
from distiltune.schema import DEFAULT_SOURCE, ConfigModel, Hint, error_context

Precision = Literal["auto", "bf16", "fp16", "fp32"]
Device = Literal["auto", "cpu", "cuda", "mps"]
#: The method of a config that names none.
DEFAULT_METHOD = "full"


class TrainConfig(ConfigModel):
    section: ClassVar[str] = "train"

    epochs: float = 3.0
    """Number of training epochs."""
    max_steps: int = -1
    """Stop after this many optimizer steps (overrides epochs when > 0)."""
    batch_size: int = Field(16, ge=1)
    """Training batch size per device."""
    eval_batch_size: int | None = Field(None, ge=1)
    """Evaluation/prediction batch size; unset: the Trainer's evaluation uses 8 on CPU, 64 on GPU, and prediction
    batches under ``eval_batch_tokens`` (see ``serving.inference.resolve_inference_batching``)."""
    eval_batch_tokens: Annotated[int | None, Hint("0 turns the budget off.")] = Field(None, ge=0)
    """Padded-token budget per prediction batch (rows x longest row); unset: 2048 on CPU (512 for ONNX) when
    ``eval_batch_size`` is unset too, none on GPU; 0 turns it off."""
    lr: Annotated[float | None, Hint("Set e.g. --lr 2e-5.")] = Field(None, gt=0)
    """Peak learning rate; unset uses the method's default (full 3e-5, lora 2e-3, ...)."""
    weight_decay: float = Field(0.01, ge=0)
    """AdamW weight decay (not applied to biases and LayerNorm)."""
    warmup_fraction: float = Field(0.06, ge=0, lt=1)
    """Fraction of the total steps spent warming the learning rate up linearly."""
    scheduler: str = "linear"
    """Learning-rate schedule after warmup (any transformers ``SchedulerType``: linear, cosine, constant...)."""
    gradient_accumulation_steps: int = Field(1, ge=1)
    """Accumulate gradients over this many batches per optimizer step."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    eval_strategy: Literal["epoch", "steps"] = "epoch"
    """Evaluate (and checkpoint) every epoch or every ``eval_steps`` steps."""
    eval_steps: int = Field(500, ge=1)
    """Evaluation interval in steps when ``eval_strategy`` is ``steps``."""
    logging_steps: int = Field(25, ge=1)
    """Log the training loss every N steps."""
    metric: str | None = None
    """Validation metric that picks the best checkpoint (f1_macro, accuracy, ...); preset default, else f1_macro."""
    early_stopping_patience: int | None = Field(None, ge=1)
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
    length_group_batches: int | None = Field(4, ge=1)
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
    focal_gamma: float = Field(2.0, ge=0)
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

    @field_validator("class_weights", mode="before")
    @classmethod
    def _class_weights(cls, spec: Any) -> Any:
        _check_class_weights(spec)
        return spec

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ConfigError(f"train.epochs must be > 0 (got {self.epochs}) unless train.max_steps is set.")
        return self


class RunConfig(ConfigModel):
    section: ClassVar[str] = "run"

    output_dir: str = "runs"
    """Folder that receives the run directory ``<timestamp>_<model>_<dataset>_<method>``."""
    name: str | None = None
    """Run directory name; unset generates one. An existing directory is never overwritten."""


class Config(ConfigModel):
    """A run's config: the sections ``data``, ``model``, ``method`` (the registered method's options, chosen by
    ``method.name``), ``train`` and ``run``. ``config.yaml`` holds :meth:`to_dict`."""

    data: DataConfig = Field(default_factory=DataConfig)
    """Where the data comes from and how it is mapped and split."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    """The encoder and its classification head."""
    method: SerializeAsAny[MethodConfig] = Field(default_factory=lambda: get_method_config_class(DEFAULT_METHOD)())
    """The tuning method (``name``: full, lora, ...) and its options."""
    train: TrainConfig = Field(default_factory=TrainConfig)
    """How the model trains."""
    run: RunConfig = Field(default_factory=RunConfig)
    """Where the run directory goes."""

    @field_validator("method", mode="before")
    @classmethod
    def _method_by_name(cls, raw: Any, info: ValidationInfo) -> Any:
        """The ``method`` mapping as the config of the method its ``name`` names (full when unnamed)."""
        if isinstance(raw, MethodConfig):
            return raw
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            source = (info.context or {}).get("source") or DEFAULT_SOURCE
            raise ConfigError(f"{source}: method: expected a mapping, got {type(raw).__name__}.")
        options = dict(raw)
        method_class = get_method_config_class(str(options.pop("name", DEFAULT_METHOD)))
        return method_class.model_validate(options, context=info.context)

    @field_serializer("method")
    def _method_with_name(self, method: MethodConfig) -> dict[str, Any]:
        return {"name": method.name, **method.model_dump()}

    @model_validator(mode="after")
    def _check(self) -> Config:
        if self.model.head != "auto" and not self.method.supports_custom_head:
            raise ConfigError(
                f"model.head={self.model.head} does not work with method '{self.method.name}'.",
                "Use --head auto, or the full, lora or head method.",
            )
        return self

    def validate(self) -> Config:  # type: ignore[override]  # BaseModel.validate is pydantic v1's deprecated parser
        """This config checked again (after attributes were set by hand); a ConfigError names the key."""
        return Config.from_dict(self.to_dict())

    # --- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The nested mapping ``config.yaml`` holds: sections and keys in declaration order, the method's name
        first in its section."""
        return self.model_dump()

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, raw: Any, source: str = DEFAULT_SOURCE, overrides: frozenset[str] = frozenset()) -> Config:
        """A validated Config from a mapping of sections; messages name ``source`` (a file) unless the key is one of
        the dotted ``overrides``."""
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{source}: expected a mapping of sections (data, model, method, train, run).")
        return cls.model_validate(dict(raw), context=error_context(source, overrides))

    @classmethod
    def from_yaml(cls, path: str | Path) -> Config:
        return cls.from_dict(read_yaml_file(path), source=str(path))

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The JSON Schema of a run config, its ``method`` section the union of the registered methods' configs,
        told apart by ``name`` (a method section without one is full's)."""
        schema = super().model_json_schema(*args, **kwargs)
        definitions = schema.setdefault("$defs", {})
        definitions.pop(MethodConfig.__name__, None)
        variants, mapping = [], {}
        for name in method_names():
            method_class = get_method_config_class(name)
            variant = method_class.model_json_schema(ref_template="#/$defs/{model}")
            definitions.update(variant.pop("$defs", {}))
            variant["properties"] = {
                "name": {"const": name, "description": "The tuning method.", "title": "Name", "type": "string"},
                **variant.get("properties", {}),
            }
            if name != DEFAULT_METHOD:
                variant["required"] = ["name", *variant.get("required", [])]
            definitions[method_class.__name__] = variant
            mapping[name] = f"#/$defs/{method_class.__name__}"
            variants.append({"$ref": mapping[name]})
        schema["properties"]["method"] = {
            "description": schema["properties"]["method"].get("description", ""),
            "oneOf": variants,
            "discriminator": {"propertyName": "name", "mapping": mapping},
            "default": {"name": DEFAULT_METHOD},
        }
        return schema


def load_config(
    source: Config | str | Path | Mapping[str, Any] | None = None,
    overrides: list[str] | Mapping[str, Any] | None = None,
    *,
    origin: str | None = None,
) -> Config:
    """The one way to a validated Config: ``source`` (a Config, the path of a YAML file, a mapping of sections, or
    None for the defaults), then dotted ``overrides`` on top.

    Overrides are ``"section.key=value"`` strings (values parsed as YAML, so ``3e-5``, ``true`` and ``[a, b]``
    work) or a ``{"section.key": value}`` mapping. ``method.name`` switches the method and keeps the options that
    the new method also has. A mistake is a one-line ConfigError naming the file (or ``config`` for an override)
    and the key; ``origin`` names the file a mapping ``source`` was read from.
    """
    origin = origin or DEFAULT_SOURCE
    if source is None:
        raw: Any = {}
    elif isinstance(source, Config):
        raw = source.to_dict()
    elif isinstance(source, Mapping):
        raw = copy.deepcopy(dict(source))
    else:
        raw, origin = read_yaml_file(source), str(source)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{origin}: expected a mapping of sections (data, model, method, train, run).")
    items = parse_overrides(overrides)
    return Config.from_dict(apply_overrides(dict(raw), items), source=origin, overrides=frozenset(items))


def apply_overrides(raw: dict[str, Any], items: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` (a mapping of sections) with the dotted ``items`` written in. A new ``method.name`` keeps only the
    options the new method has."""
    items = dict(items)
    # A section given as a model ({"train": TrainConfig(...)}) takes overrides as its mapping does.
    raw = {section: _section_mapping(values) for section, values in raw.items()}
    if "method.name" in items:
        new_name = items.pop("method.name")
        current = raw.get("method") if isinstance(raw.get("method"), Mapping) else {}
        if new_name != current.get("name", DEFAULT_METHOD):
            allowed = get_method_config_class(str(new_name)).model_fields
            raw["method"] = {"name": new_name, **{k: v for k, v in current.items() if k in allowed}}
    for dotted, value in items.items():
        section, _, key = dotted.partition(".")
        if not key:
            raise ConfigError(f"Override '{dotted}' needs a key: use section.key=value, e.g. train.lr=3e-5.")
        values = raw.get(section)
        if values is None:
            values = {}
        if isinstance(values, Mapping):  # anything else is refused by validation, naming the section
            raw[section] = {**values, key: value}
    return raw


def _section_mapping(values: Any) -> Any:
    if isinstance(values, MethodConfig):
        return {"name": values.name, **values.model_dump()}
    return values.model_dump() if isinstance(values, ConfigModel) else values


def parse_overrides(overrides: list[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``["train.lr=3e-5", ...]`` (values parsed as YAML) or a ``{"train.lr": 3e-5}`` mapping, as one mapping."""
    if overrides is None:
        return {}
    if isinstance(overrides, Mapping):
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


def dotted_items(config: Config, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """``config`` as ``{"section.key": value}`` (every key, sections in ``skip`` left out): what a tune study records
    so its workers can check they search the same base config."""
    return {
        f"{section}.{key}": value
        for section, values in config.to_dict().items()
        if section not in skip
        for key, value in values.items()
    }


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
        return config.model_copy(
            update={
                "data": config.data.model_copy(update={"max_length": self.max_length, "long_text": self.long_text}),
                "train": config.train.model_copy(update={"lr": self.lr, "metric": self.metric}),
            }
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
    config.data.model_copy(update={"long_text": long_text}).long_text_options().validate(max_length)
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
    "apply_overrides",
    "dotted_items",
    "load_config",
    "method_names",
    "parse_overrides",
    "read_yaml_file",
    "resolve_settings",
]
