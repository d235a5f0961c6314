"""The plan of a comparison (``compare.yaml``) and the record of each of its runs (``comparison.json``).

The plan is the grid models x methods x seeds, and it pins everything the runs must share: the base config with
``data.split_seed`` fixed (the validation split is carved the same way for every model and training seed); per
model, one max length for all its encoder runs (each model tokenizes with its own tokenizer, so its runs produce
the same token ids), its own settings and the methods it cannot run; the methods, their options, the seeds, and
the significance test of the report, fixed before any run.

A model entry of the plan::

    label: roberta-base            # its name in the table and plots (unique in the plan)
    name: FacebookAI/roberta-base  # model.name: hub id or (absolute) local directory
    settings: {train.lr: 2.0e-05}  # per-model config keys (train.*, model.*, data.max_length)
    run_prefix: roberta-base_      # its run directories are <run_prefix><method>_seed<N>
    max_length: 256                # pinned once the model loaded
    refused: {prefix: why}         # methods it cannot run (Method.unsupported_reason), once it loaded
    error: null                    # why it could not be loaded, when that failed (retried on --resume)

A plan written before models existed (no ``models`` key) is read as one model whose runs have no prefix.

:class:`ComparePlan` is the plan as a typed model; on disk it keeps the YAML shape above (``config`` is the base
config without its ``method`` section: each run takes its method from ``methods`` and ``method_options``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import Field, ValidationInfo, field_serializer, field_validator, model_validator

from distiltune import runs
from distiltune.comparison.statistics import SignificanceTest
from distiltune.config import DEFAULT_METHOD, Config, load_config, parse_overrides, read_yaml_file, resolve_settings
from distiltune.errors import ConfigError, ModelError, RunError
from distiltune.methods import default_compare_methods, get_method, get_method_config_class
from distiltune.methods.base import MethodConfig
from distiltune.modeling import ModelConfig, load_encoder_config, load_tokenizer, model_max_length
from distiltune.schema import DEFAULT_SOURCE, ConfigModel, error_context

PLAN_FILE = "compare.yaml"
RESULTS_FILE = "comparison.json"
LOG_FILE = "compare.log"
DEFAULT_SEEDS = 3
#: Config keys a model entry may set; everything else is shared by every run of the comparison.
PER_MODEL_SECTIONS = ("train", "model")
PER_MODEL_KEYS = ("data.max_length",)
NOT_PER_MODEL = ("train.seed", "train.metric", "model.name")


def _check_per_model(settings: dict[str, Any], where: str) -> dict[str, Any]:
    """Only per-model keys (train.* but seed and metric, model.*, data.max_length); their values are checked
    against the config once the plan is probed."""
    for key in settings:
        section, _, field = key.partition(".")
        if not ((section in PER_MODEL_SECTIONS and field and key not in NOT_PER_MODEL) or key in PER_MODEL_KEYS):
            raise ConfigError(
                f"{where}: '{key}' cannot be set per model.",
                "A model entry takes train.* (but not seed or metric), model.* and data.max_length; the rest is "
                "shared by every run of the comparison.",
            )
    return settings


class ModelChoice(ConfigModel):
    """A model to compare as the user names it: a name, or a mapping with ``name``, an optional ``label`` and
    per-model config keys, dotted (``train.lr: 2e-5``) or nested (``train: {lr: 2e-5}``)."""

    section: ClassVar[str] = "models"

    name: str = Field(min_length=1)
    """``model.name``: a hub id or a local directory."""
    label: str | None = None
    """Its name in the table and plots; unset: from the name."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """Per-model config keys, dotted."""

    @model_validator(mode="before")
    @classmethod
    def _from_user_form(cls, raw: Any, info: ValidationInfo) -> Any:
        source = (info.context or {}).get("source") or DEFAULT_SOURCE
        if isinstance(raw, str):
            raw = {"name": raw}
        if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str) or not raw["name"].strip():
            raise ConfigError(f"{source}: every model needs a name, got {raw!r}.", "E.g. {name: roberta-base}.")
        name = raw["name"].strip()
        settings: dict[str, Any] = {}
        for key, value in raw.items():
            if key in ("name", "label"):
                continue
            if isinstance(value, Mapping) and "." not in key:
                settings.update({f"{key}.{sub}": sub_value for sub, sub_value in value.items()})
            else:
                settings[key] = value
        label = None if raw.get("label") is None else str(raw["label"])
        return {"name": name, "label": label, "settings": _check_per_model(settings, f"{source}: model {name}")}


class ModelEntry(ConfigModel):
    """One model of the plan (an entry of ``models`` in compare.yaml)."""

    section: ClassVar[str] = "models"

    label: str
    """Its name in the table and plots (unique in the plan)."""
    name: str
    """``model.name``: a hub id or an (absolute) local directory."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """Per-model config keys (train.*, model.*, data.max_length), dotted."""
    run_prefix: str = ""
    """Its run directories are ``<run_prefix><method>_seed<N>``."""
    max_length: int | None = None
    """The max length all its encoder runs tokenize with, pinned once the model loaded."""
    refused: dict[str, str] = Field(default_factory=dict)
    """Methods it cannot run, with the reason (``Method.unsupported_reason``), once it loaded."""
    error: str | None = None
    """Why it could not be loaded, when that failed (retried on ``--resume``)."""

    @field_validator("settings")
    @classmethod
    def _per_model_keys(cls, settings: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        source = (info.context or {}).get("source") or DEFAULT_SOURCE
        return _check_per_model(settings, f"{source}: model {info.data.get('name')}")

    @field_validator("refused", mode="before")
    @classmethod
    def _none_is_empty(cls, refused: Any) -> Any:
        return {} if refused is None else refused


class ComparePlan(ConfigModel):
    """A comparison's plan, ``compare.yaml``: the grid models x methods x seeds and everything its runs share."""

    config: Config
    """The base config (``data.split_seed`` fixed, local paths absolute); its method section is not used and not
    written: each run takes its method from ``methods`` and its options from ``method_options``."""
    method_options: dict[str, Any] = Field(default_factory=dict)
    """Method options (``method.*``) for every method that has them."""
    methods: list[str]
    """The methods compared, in order."""
    explicit_methods: list[str] = Field(default_factory=list)
    """The methods the user named (a model that refuses one of them shows a skipped row; a default method it
    refuses is left out)."""
    models: list[ModelEntry]
    """The models compared, in order."""
    seeds: list[int]
    """The training seeds every model and method runs with."""
    statistics: SignificanceTest
    """The significance test of the report, fixed before any run."""
    created: str = ""
    """When the comparison started."""

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, raw: Any, info: ValidationInfo) -> Any:
        return upgrade_plan(raw, (info.context or {}).get("source") or DEFAULT_SOURCE)

    @field_validator("created", mode="before")
    @classmethod
    def _timestamp_as_text(cls, created: Any) -> Any:
        return str(created) if created is not None else ""  # YAML reads an unquoted timestamp as a datetime

    @field_serializer("config")
    def _config_without_method(self, config: Config) -> dict[str, Any]:
        return {section: values for section, values in config.to_dict().items() if section != "method"}

    def to_dict(self) -> dict[str, Any]:
        """The YAML shape of compare.yaml."""
        return self.model_dump()

    def model(self, label: str) -> ModelEntry:
        return next(entry for entry in self.models if entry.label == label)


@dataclass
class RunRecord:
    """One cell of the grid: a model x method x seed (a method without an encoder runs once per seed, model None)."""

    method: str
    seed: int
    name: str
    """The run directory's name inside the comparison directory."""
    model: str | None = None
    """The model's label; None for a method that does not use the encoder (TF-IDF), which runs once per seed."""
    status: str = "pending"
    """completed, failed, skipped (the model cannot run the method), or pending (not run yet)."""
    error: str | None = None
    """Why it failed."""
    reason: str | None = None
    """Why it was skipped."""
    reused: bool = False
    """Completed by an earlier invocation and skipped by ``--resume``."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_name(method: str, seed: int, prefix: str = "") -> str:
    return f"{prefix}{method}_seed{seed}"


def uses_encoder(method: str) -> bool:
    return get_method(method).uses_encoder


def load_plan(compare_dir: Path) -> ComparePlan:
    path = compare_dir / PLAN_FILE
    if not path.is_file():
        raise RunError(
            f"{compare_dir} is not a comparison directory (no {PLAN_FILE}).",
            "Pass a folder created by distiltune compare.",
        )
    return ComparePlan.model_validate(read_yaml_file(path), context=error_context(str(path)))


def upgrade_plan(plan: Any, source: str = DEFAULT_SOURCE) -> Any:
    """The raw compare.yaml of an earlier version in today's shape. A plan written before the models grid: one model
    (the config's), whose runs keep their names ``<method>_seed<N>`` and its max length pinned in the config; every
    method was named by the user; the test is today's, on the runs' selection metric."""
    if not isinstance(plan, Mapping):
        raise ConfigError(f"{source}: expected a mapping (config, methods, models, seeds, ...).")
    plan = dict(plan)
    config = plan.get("config") if isinstance(plan.get("config"), Mapping) else {}
    if "models" not in plan:
        model = config.get("model") if isinstance(config.get("model"), Mapping) else {}
        data = config.get("data") if isinstance(config.get("data"), Mapping) else {}
        name = str(model.get("name") or ModelConfig().name)
        plan["models"] = [
            {
                "label": runs.slug(name),
                "name": name,
                "settings": {},
                "run_prefix": "",
                "max_length": data.get("max_length"),
                "refused": {},
                "error": None,
            }
        ]
    plan.setdefault("explicit_methods", list(plan.get("methods") or []))
    if "statistics" not in plan:
        plan["statistics"] = {"metric": comparison_metric(Config.from_dict(config, source=source))}
    return plan


def model_entry(plan: ComparePlan, label: str) -> ModelEntry:
    return plan.model(label)


def plan_records(plan: ComparePlan) -> list[RunRecord]:
    """The grid in the order it runs: per seed, every model's encoder methods, then the methods without an encoder
    (once, whatever the models). A method a model refuses is a skipped record when the user named it, and not
    planned at all when it only came with the default method list."""
    encoder_methods = [method for method in plan.methods if uses_encoder(method)]
    other_methods = [method for method in plan.methods if not uses_encoder(method)]
    records = []
    for seed in plan.seeds:
        for entry in plan.models:
            for method in encoder_methods:
                reason = entry.refused.get(method)
                if reason and method not in plan.explicit_methods:
                    continue
                record = RunRecord(method, seed, run_name(method, seed, entry.run_prefix), model=entry.label)
                if reason:
                    record.status, record.reason = "skipped", reason
                records.append(record)
        records += [RunRecord(method, seed, run_name(method, seed)) for method in other_methods]
    return records


def left_out(plan: ComparePlan) -> list[tuple[str, str, str]]:
    """(model, method, reason) of the default methods a model cannot run, which the plan leaves out."""
    return [
        (entry.label, method, reason)
        for entry in plan.models
        for method, reason in entry.refused.items()
        if method in plan.methods and method not in plan.explicit_methods
    ]


def load_records(compare_dir: Path, plan: ComparePlan) -> list[RunRecord]:
    """The records saved by the last invocation, with the status of each run directory re-checked."""
    saved: dict[str, dict[str, Any]] = {}
    results = compare_dir / RESULTS_FILE
    if results.is_file():
        saved = {row["name"]: row for row in runs.read_json(results).get("runs", [])}
    records = []
    for record in plan_records(plan):
        if record.status == "skipped":
            pass
        elif runs.is_completed(compare_dir / record.name):
            record.status = "completed"
            record.reused = bool(saved.get(record.name, {}).get("reused"))
        elif record.name in saved and saved[record.name].get("status") == "failed":
            record.status, record.error = "failed", saved[record.name].get("error")
        records.append(record)
    return records


# --- a new plan ---------------------------------------------------------------------------------------------


def new_plan(
    config: Config | str | Path | Mapping[str, Any] | None,
    overrides: list[str] | Mapping[str, Any] | None,
    methods: Sequence[str] | str | None,
    seeds: int | Sequence[int] | str | None,
    models: Sequence[str | Mapping[str, Any]] | str | None = None,
    models_config: str | Path | None = None,
) -> ComparePlan:
    """The plan of a new comparison: the base config (``config`` and ``overrides`` through :func:`load_config`;
    a config file may also hold a ``models:`` list), the methods and their options, the seeds, the models (probed:
    their max length pinned, the methods they refuse found, every run's config checked)."""
    items = parse_overrides(overrides)
    if "method.name" in items:
        raise ConfigError("compare runs several methods: choose them with --methods, not method.name.")
    if models is not None and "model.name" in items:
        raise ConfigError("Both --model and --models name the models to compare.", "Use --models a,b (or --model).")
    method_overrides = {key.split(".", 1)[1]: items.pop(key) for key in list(items) if key.startswith("method.")}
    file_models = None
    source: Config | Mapping[str, Any] | None = config if isinstance(config, Config | Mapping) else None
    origin = None
    if isinstance(config, str | Path):
        raw = read_yaml_file(config)
        if isinstance(raw, dict):
            file_models = raw.pop("models", None)
        source, origin = raw, str(config)
    base = load_config(source, items, origin=origin)
    # Options from the config's method section apply where they fit; explicit method.* overrides must fit somewhere.
    method_options = {**base.method.model_dump(), **method_overrides}
    chosen = parse_methods(methods)
    for key in method_overrides:
        if not any(key in option_names(name) for name in chosen):
            raise ConfigError(
                f"method.{key} is not an option of any compared method ({', '.join(chosen)}).",
                "Check the spelling, or add the method it belongs to.",
            )
    entries = parse_models(models, models_config, file_models, origin)
    if not entries:
        entries = [ModelChoice(name=base.model.name)]
    split_seed = base.data.split_seed if base.data.split_seed is not None else base.train.seed
    base = base.model_copy(
        update={
            # --resume may run from another working directory: pin a local dataset path.
            "data": base.data.model_copy(update={"split_seed": split_seed, "dataset": pinned_path(base.data.dataset)}),
            "model": base.model.model_copy(update={"name": pinned_path(entries[0].name)}),
            "method": get_method_config_class(DEFAULT_METHOD)(),
        }
    )
    plan = ComparePlan(
        config=base,
        method_options=method_options,
        methods=chosen,
        explicit_methods=chosen if methods is not None else [],
        models=[],
        seeds=parse_seeds(seeds, base.train.seed),
        statistics=SignificanceTest(metric=comparison_metric(base)),
        created=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    add_models(plan, entries)
    probe_models(plan)
    return plan


def extend_plan(
    compare_dir: Path,
    config: Config | str | Path | Mapping[str, Any] | None,
    overrides: list[str] | Mapping[str, Any] | None,
    methods: Sequence[str] | str | None,
    seeds: int | Sequence[int] | str | None,
    models: Sequence[str | Mapping[str, Any]] | str | None = None,
    models_config: str | Path | None = None,
) -> ComparePlan:
    """The saved plan of ``compare_dir`` for ``--resume``, with any extra methods, seeds and models added; every
    model is probed again (a model that could not be loaded is retried, a new method's refusals are found)."""
    if config is not None or overrides:
        raise ConfigError(
            "--resume reuses the comparison's saved config; --config and --set cannot change it.",
            "Start a new comparison to change the config.",
        )
    plan = load_plan(compare_dir)
    if methods is not None:
        added = parse_methods(methods)
        plan.methods = list(dict.fromkeys([*plan.methods, *added]))
        plan.explicit_methods = list(dict.fromkeys([*plan.explicit_methods, *added]))
    if seeds is not None:
        extra = parse_seeds(seeds, plan.config.train.seed)
        plan.seeds = list(dict.fromkeys([*plan.seeds, *extra]))
    add_models(plan, parse_models(models, models_config, None, None))
    probe_models(plan)
    return plan


def parse_methods(methods: Sequence[str] | str | None) -> list[str]:
    if methods is None:
        return default_compare_methods()
    names = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    if not names:
        raise ConfigError("No methods to compare.", "Pass e.g. --methods full,lora,untuned,tfidf.")
    for name in names:
        get_method(name)  # unknown names fail now, with a "did you mean", not after hours of other runs
    return list(dict.fromkeys(names))


def parse_seeds(seeds: int | Sequence[int] | str | None, first: int) -> list[int]:
    if seeds is None:
        seeds = DEFAULT_SEEDS
    if isinstance(seeds, str):
        parts = [part.strip() for part in seeds.split(",") if part.strip()]
        try:
            values = [int(part) for part in parts]
        except ValueError:
            raise ConfigError(f"--seeds must be a count (3) or a list (1,2,3), got '{seeds}'.") from None
        seeds = values[0] if len(values) == 1 and "," not in seeds else values
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {seeds}.")
        return [first + offset for offset in range(seeds)]
    values = list(dict.fromkeys(int(seed) for seed in seeds))
    if not values:
        raise ConfigError("--seeds is empty.", "Pass a count (3) or a list (1,2,3).")
    return values


# --- models -------------------------------------------------------------------------------------------------


def parse_models(
    models: Sequence[str | Mapping[str, Any]] | str | None,
    models_config: str | Path | None,
    config_models: Any,
    config_source: str | None,
) -> list[ModelChoice]:
    """The models to compare.

    ``models`` names them (``"a,b"``, or a list of names and entries); settings for a named model come from an
    entry with that name or label in ``models_config`` (a YAML file: a list of entries, or ``models:`` and the
    list) or in the compare config's own ``models:`` list. Without ``models`` those lists are the models.
    """
    library: list[ModelChoice] = []
    if config_models is not None:
        library += model_list(config_models, f"{config_source or DEFAULT_SOURCE}: models")
    if models_config is not None:
        raw = read_yaml_file(models_config)
        raw = raw.get("models") if isinstance(raw, dict) and set(raw) == {"models"} else raw
        library += model_list(raw, str(models_config))
    if models is None:
        return library
    if isinstance(models, str):
        models = [part.strip() for part in models.split(",") if part.strip()]
    if not models:
        raise ConfigError("No models to compare.", "Pass e.g. --models distilbert-base-uncased,roberta-base.")
    out = []
    for entry in model_list(list(models), "models"):
        known = next((e for e in library if entry.name in (e.name, e.label)), None)
        if known is None:
            out.append(entry)
            continue
        out.append(
            known.model_copy(
                update={"settings": {**known.settings, **entry.settings}, "label": entry.label or known.label}
            )
        )
    return out


def model_list(raw: Any, source: str) -> list[ModelChoice]:
    if not isinstance(raw, list):
        raise ConfigError(
            f"{source}: expected a list of models (names, or mappings with a name and settings).",
            "E.g. models: [distilbert-base-uncased, {name: roberta-base, train.lr: 2e-5}].",
        )
    return [ModelChoice.model_validate(item, context=error_context(source)) for item in raw]


def add_models(plan: ComparePlan, entries: list[ModelChoice]) -> None:
    """Add new models to the plan with a unique label and run prefix; a model already in it must keep its settings."""
    for entry in entries:
        name = pinned_path(entry.name)
        label = runs.slug(entry.label or entry.name)
        # The same model again is the same entry (found by its label when it has one, else by its name).
        existing = next(
            (e for e in plan.models if (e.label == label if entry.label is not None else e.name == name)), None
        )
        if existing is not None:
            if existing.name != name or (entry.settings and entry.settings != existing.settings):
                raise ConfigError(
                    f"Model {existing.label} is already in this comparison as {existing.name} with settings "
                    f"{existing.settings or '{}'}.",
                    "Give the other one its own label (label: NAME in its entry), or start a new comparison.",
                )
            continue
        unique = unique_label(label, {e.label for e in plan.models})
        plan.models.append(ModelEntry(label=unique, name=name, settings=dict(entry.settings), run_prefix=f"{unique}_"))


def unique_label(label: str, taken: set[str]) -> str:
    candidates = (label if n == 1 else f"{label}-{n}" for n in range(1, len(taken) + 2))
    return next(candidate for candidate in candidates if candidate not in taken)


def pinned_path(name: str) -> str:
    """A local path as an absolute path (``--resume`` may run from another folder); other names unchanged."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def model_config(plan: ComparePlan, entry: ModelEntry, method: str = DEFAULT_METHOD) -> Config:
    """The config of ``entry``'s runs of ``method`` (before the seed and run name), validated: the base config, the
    method and its options, the model, its settings and its pinned max length."""
    overrides = {**method_overrides(plan, method), "model.name": entry.name, **entry.settings}
    if entry.max_length is not None:
        overrides["data.max_length"] = entry.max_length
    try:
        return load_config(plan.config, overrides)
    except ConfigError as err:
        raise ConfigError(f"Model {entry.label}, method {method}: {err.message}", err.hint) from None


def shared_config(plan: ComparePlan, method: str) -> Config:
    """The config of the runs of a method without an encoder (before the seed and run name), validated."""
    try:
        return load_config(plan.config, method_overrides(plan, method))
    except ConfigError as err:
        raise ConfigError(f"Method {method}: {err.message}", err.hint) from None


def method_overrides(plan: ComparePlan, method: str) -> dict[str, Any]:
    """``method`` and the comparison's method options that it has, as dotted keys."""
    names = option_names(method)
    options = {f"method.{key}": value for key, value in plan.method_options.items() if key in names}
    return {"method.name": method, **options}


def probe_models(plan: ComparePlan) -> None:
    """Load each model's tokenizer and encoder config (no weights): pin its max length, find the methods it refuses
    and check every run's config. A model that cannot be loaded keeps the reason in ``error``; its runs fail with it
    and ``--resume`` tries again. Mistakes in the config raise here, before any run."""
    encoder_methods = [method for method in plan.methods if uses_encoder(method)]
    for entry in plan.models:
        config = model_config(plan, entry)
        try:
            tokenizer = load_tokenizer(config.model.name, config.model.revision, config.model.trust_remote_code)
            encoder = load_encoder_config(config.model.name, config.model.revision, config.model.trust_remote_code)
        except ModelError as err:
            entry.error = err.one_line()
            continue
        entry.error = None
        entry.refused = {
            method: reason
            for method in encoder_methods
            if (reason := refusal(method, config, encoder, plan.method_options)) is not None
        }
        runnable = [method for method in encoder_methods if method not in entry.refused]
        if entry.max_length is None:
            try:
                entry.max_length = pinned_max_length(
                    config, runnable, plan.method_options, model_max_length(encoder, tokenizer)
                )
            except ConfigError as err:
                raise ConfigError(f"Model {entry.label}: {err.message}", err.hint) from None
        for method in runnable:
            model_config(plan, entry, method)
    for method in plan.methods:
        if not uses_encoder(method):
            shared_config(plan, method)


def refusal(method: str, config: Config, encoder_config: Any, options: Mapping[str, Any] | None = None) -> str | None:
    """Why ``method`` (with the comparison's method ``options``: a LoRA ``target_modules`` counts) cannot run on
    this model (its encoder, or a head it does not support), or None."""
    registered = get_method(method)
    reason = registered.refusal(encoder_config, method_config(method, options or {}))
    if reason:
        return reason
    if config.model.head != "auto" and not registered.config_cls.supports_custom_head:
        return f"model.head={config.model.head} does not work with method {method}"
    return None


def option_names(method: str) -> set[str]:
    return set(get_method_config_class(method).model_fields)


def method_config(method: str, options: Mapping[str, Any]) -> MethodConfig:
    """``method``'s config with the comparison's options that it has."""
    names = option_names(method)
    try:
        return get_method_config_class(method).model_validate({k: v for k, v in options.items() if k in names})
    except ConfigError as err:
        raise ConfigError(f"Method {method}: {err.message}", err.hint) from None


def pinned_max_length(config: Config, methods: list[str], method_options: Mapping[str, Any], limit: int) -> int:
    """The one max length every encoder run of one model tokenizes with, resolved as ``train`` resolves it
    (``config.resolve_settings``) against the model's ``limit`` less the most positions any of its ``methods``
    reserves (soft-prompt tokens).

    Pinning it in the plan means no run resolves it on its own, so all runs of the model produce the same token ids.
    """
    reserved = max((method_config(name, method_options).reserved_positions() for name in methods), default=0)
    return resolve_settings(config, limit, reserved_positions=reserved).max_length


def comparison_metric(config: Config) -> str:
    """The metric the report ranks and tests rows on: the runs' selection metric (configured, the preset's, or
    f1_macro)."""
    return resolve_settings(config, model_limit=None, uses_encoder=False).metric


# --- runs ---------------------------------------------------------------------------------------------------


def run_config(plan: ComparePlan, compare_dir: Path, record: RunRecord) -> Config:
    """The config of one run of the plan: its model's (or, without an encoder, the shared) config for its method,
    with its seed and its run directory inside ``compare_dir``."""
    if record.model is not None:
        config = model_config(plan, plan.model(record.model), record.method)
    else:
        config = shared_config(plan, record.method)
    return load_config(
        config, {"train.seed": record.seed, "run.output_dir": str(compare_dir), "run.name": record.name}
    )


def write_plan(compare_dir: Path, plan: ComparePlan) -> None:
    text = yaml.safe_dump(plan.to_dict(), sort_keys=False, allow_unicode=True)
    tmp = compare_dir / f".{PLAN_FILE}.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(compare_dir / PLAN_FILE)


def write_records(compare_dir: Path, records: list[RunRecord]) -> None:
    """Save the run states after every run, so an interrupted comparison still knows what failed and why."""
    path = compare_dir / RESULTS_FILE
    results = runs.read_json(path) if path.is_file() else {}
    results["runs"] = [record.to_dict() for record in records]
    runs.write_json(path, results)


__all__ = [
    "DEFAULT_SEEDS",
    "LOG_FILE",
    "PLAN_FILE",
    "RESULTS_FILE",
    "ComparePlan",
    "ModelChoice",
    "ModelEntry",
    "RunRecord",
    "comparison_metric",
    "extend_plan",
    "left_out",
    "load_plan",
    "load_records",
    "model_entry",
    "new_plan",
    "parse_methods",
    "parse_models",
    "parse_seeds",
    "pinned_max_length",
    "plan_records",
    "run_config",
    "run_name",
    "upgrade_plan",
    "uses_encoder",
    "write_plan",
    "write_records",
]
