"""Config: defaults, YAML round trip, dotted overrides, strict keys, validation, presets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from distiltune.config import Config, load_config
from distiltune.errors import ConfigError
from distiltune.presets import presets


def test_defaults_validate_and_round_trip_through_yaml(tmp_path: Path) -> None:
    config = load_config()
    assert config.model.name == "distilbert-base-uncased" and config.method.name == "full"
    path = tmp_path / "run.yaml"
    config.to_yaml(path)
    assert Config.from_yaml(path) == config


def test_yaml_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"data": {"dataset": "rte"}, "train": {"lr": 1e-5, "epochs": 1}}))
    config = load_config(path, ["train.lr=3e-5", "train.batch_size=8", "data.label_names=[a, b]"])
    assert config.data.dataset == "rte" and config.train.epochs == 1.0
    assert config.train.lr == pytest.approx(3e-5) and config.train.batch_size == 8
    assert config.data.label_names == ["a", "b"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.lrr=1e-3"], "unknown key 'lrr'.*Did you mean 'lr'"),
        (["trian.lr=1e-3"], "unknown key 'trian'.*Did you mean 'train'"),
        (["train.lr=0"], "train.lr must be > 0"),
        (["train.lr=-1e-5"], "train.lr must be > 0"),
        (["train.batch_size=0"], "train.batch_size must be >= 1"),
        (["train.length_group_batches=0"], "train.length_group_batches must be >= 1"),
        (["train.batch_size=abc"], "train.batch_size must be an integer"),
        (["train.precision=fp8"], "must be one of auto, bf16, fp16, fp32"),
        (["method.name=lorra"], "Unknown method 'lorra'"),
        (["train.lr"], "has no '='"),
    ],
)
def test_config_mistakes_are_config_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_python_api_overrides_may_be_strings_as_on_the_command_line() -> None:
    config = load_config(
        None,
        {"train.group_by_length": "false", "train.sdpa": "Yes", "train.batch_size": "8", "train.eval_steps": " 20 "},
    )
    assert config.train.group_by_length is False and config.train.sdpa is True
    assert config.train.batch_size == 8 and config.train.eval_steps == 20
    with pytest.raises(ConfigError, match="train.sdpa must be true or false, got 'maybe'"):
        load_config(None, {"train.sdpa": "maybe"})
    with pytest.raises(ConfigError, match="train.batch_size must be an integer, got '8.5'"):
        load_config(None, {"train.batch_size": "8.5"})


def test_unknown_yaml_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: train: unknown key 'epoch'. Did you mean 'epochs'"):
        load_config(path)


def test_every_preset_is_complete() -> None:
    found = presets()
    assert {"imdb", "imdb-truncated", "ag_news", "rte", "sst2", "imdb-demo"} <= set(found)
    for preset in found.values():
        assert preset.text_column and preset.label_column and preset.label_names and preset.max_length > 0
        assert preset.metric in ("accuracy", "f1_macro")
    assert found["rte"].text_pair_column == "sentence2" and found["rte"].source == "nyu-mll/glue:rte"


LONG_TEXT_PRESETS = ("imdb", "imdb-truncated", "imdb-demo")


def test_long_text_presets_read_reviews_as_the_long_text_benchmark_decided() -> None:
    """benchmarks/long_text.py's rule names the long-text presets' mode; the presets follow its newest results file."""
    from distiltune.config import resolve_settings

    results = sorted((Path(__file__).parents[1] / "benchmarks" / "results").glob("long_text_*.json"))
    decision = json.loads(results[-1].read_text(encoding="utf-8"))["decision"]
    for name in LONG_TEXT_PRESETS:
        settings = resolve_settings(load_config(None, {"data.dataset": name}), model_limit=512)
        assert settings.long_text == decision["default_long_text"], name
        overridden = load_config(None, {"data.dataset": name, "data.long_text": "head"})
        assert resolve_settings(overridden, model_limit=512).long_text == "head", name
    assert resolve_settings(load_config(None, {"data.dataset": "sst2"}), model_limit=512).long_text == "head"


# --- one config system (issue 29): pydantic models, one load_config, one-line errors ----------------------------


def test_an_option_of_another_method_says_which_method_has_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, ["method.merge=true"])
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("config: method.merge is an option of method lora, not full.")
    assert "Add --method lora" in message and "Valid keys: ." not in message
    with pytest.raises(ConfigError, match="method.num_virtual_tokens is an option of methods prompt and prefix, not"):
        load_config(None, {"method.name": "lora", "method.num_virtual_tokens": 4})
    # A key no method has: the closest option of this method, or that it has none.
    with pytest.raises(ConfigError, match=r"config: method: unknown key 'rr'. Did you mean 'r'\?"):
        load_config(None, {"method.name": "lora", "method.rr": 4})
    with pytest.raises(ConfigError, match=r"config: method: unknown key 'colour'. Method full has no options.$"):
        load_config(None, {"method.colour": "red"})


def test_cli_names_the_method_of_an_option(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from distiltune.cli import app

    result = CliRunner().invoke(app, ["train", "--set", "method.merge=true", "--output-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "method.merge is an option of method lora, not full" in str(result.exception)
    assert not any(tmp_path.iterdir())  # refused before a run directory exists


def test_load_config_takes_a_config_a_file_a_mapping_or_the_defaults(tmp_path: Path) -> None:
    from distiltune.config import TrainConfig
    from distiltune.methods.lora import LoraMethodConfig

    overrides = {"train.lr": 3e-5, "method.name": "lora", "method.r": 4}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"data": {"dataset": "rte"}, "train": {"epochs": 1}}))
    from_file = load_config(path, overrides)
    from_mapping = load_config({"data": {"dataset": "rte"}, "train": {"epochs": 1}}, overrides)
    base = load_config(None, {"data.dataset": "rte", "train.epochs": 1})
    from_config = load_config(base, overrides)
    assert from_file == from_mapping == from_config
    assert from_config.method.r == 4 and from_config.train.lr == pytest.approx(3e-5)
    assert base.method.name == "full" and base.train.lr is None  # the Config given is not changed
    assert load_config() == Config() and load_config(None, None) == load_config({}, [])
    # Switching the method keeps the options the new one also has, and only those.
    lora = load_config(None, {"method.name": "lora", "method.r": 4, "method.merge": True})
    assert (
        load_config(lora, {"method.name": "prompt"}).method.model_dump()
        == load_config(None, {"method.name": "prompt"}).method.model_dump()
    )
    assert load_config(lora, {"train.epochs": 2}).method.r == 4
    # Sections given as models take overrides too.
    sections = {"train": TrainConfig(lr=1e-3), "method": LoraMethodConfig(r=2)}
    mixed = load_config(sections, {"train.epochs": 2, "method.alpha": 4})
    assert (mixed.train.lr, mixed.train.epochs, mixed.method.r, mixed.method.alpha) == (1e-3, 2.0, 2, 4)


def test_values_convert_as_a_yaml_file_and_the_command_line_write_them(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    # YAML 1.1 reads 1e-5 (no dot) as a string, and a whole number may be written as 3.0.
    path.write_text("train:\n  lr: 1e-5\n  batch_size: 8.0\n  class_weights: {pos: 3}\ndata:\n  train_split: 2020\n")
    config = load_config(path)
    assert config.train.lr == 1e-5 and config.train.batch_size == 8 and isinstance(config.train.batch_size, int)
    assert config.train.class_weights == {"pos": 3.0} and config.data.train_split == "2020"
    lists = load_config(
        None, {"method.name": "lora", "method.target_modules": "query, value", "data.label_names": "a,b"}
    )
    assert lists.method.target_modules == ["query", "value"] and lists.data.label_names == ["a", "b"]
    for word, value in (("on", True), ("no", False), ("1", True), ("off", False)):
        assert load_config(None, {"train.tune_threshold": word}).train.tune_threshold is value
    with pytest.raises(ConfigError, match="config: train.epochs must be a number, got True."):
        load_config(None, {"train.epochs": True})
    with pytest.raises(ConfigError, match="config: train.max_steps must be an integer, got False."):
        load_config(None, {"train.max_steps": False})
    with pytest.raises(ConfigError, match="train.class_weights: the weight of 'pos' must be a positive number"):
        load_config(None, {"train.class_weights": {"pos": -1}})


def test_a_mistake_names_the_file_unless_an_override_made_it(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  batch_size: many\n")
    with pytest.raises(ConfigError, match=f"^{path}: train.batch_size must be an integer, got 'many'.$"):
        load_config(path)
    path.write_text("train:\n  epochs: 1\n")
    with pytest.raises(ConfigError, match=r"^config: train: unknown key 'lrr'. Did you mean 'lr'\?$"):
        load_config(path, ["train.lrr=1"])
    with pytest.raises(ConfigError, match=f"^{path}: data: expected a mapping, got list.$"):
        path.write_text("data: [a, b]\n")
        load_config(path)


def test_a_config_changed_by_hand_is_checked_again() -> None:
    config = load_config()
    config.train.warmup_fraction = 1.5
    with pytest.raises(ConfigError, match=r"train.warmup_fraction must be in \[0, 1\), got 1.5."):
        config.validate()
    with pytest.raises(ConfigError, match="data.validation_fraction must be in \\(0, 1\\), got 0"):
        load_config(None, {"data.validation_fraction": 0})


#: config.yaml's sections and keys, in the order every run writes them (older tools read it).
CONFIG_YAML_KEYS = {
    "data": [
        "dataset", "text_column", "text_pair_column", "label_column", "label_names", "train_split",
        "validation_split", "test_split", "validation_fraction", "split_seed", "max_length", "max_train_samples",
        "max_eval_samples", "drop_missing_labels", "long_text", "head_tokens", "stride", "max_windows",
        "window_aggregation", "label_names_file", "multi_label", "label_separator", "label_columns", "column_names",
    ],
    "model": ["name", "revision", "trust_remote_code", "head", "pooling", "head_hidden_size", "head_dropout"],
    "method": ["name"],
    "train": [
        "epochs", "max_steps", "batch_size", "eval_batch_size", "eval_batch_tokens", "lr", "weight_decay",
        "warmup_fraction", "scheduler", "gradient_accumulation_steps", "max_grad_norm", "eval_strategy",
        "eval_steps", "logging_steps", "metric", "early_stopping_patience", "seed", "precision", "device",
        "group_by_length", "length_group_batches", "dataloader_workers", "fast_attention", "compile",
        "dynamic_padding", "sort_by_length", "cache_tokenized", "sdpa", "fused_optimizer", "async_steps",
        "deterministic", "class_weights", "loss", "focal_gamma", "calibrate", "tune_threshold", "threshold_metric",
        "report_to",
    ],
    "run": ["output_dir", "name"],
}  # fmt: skip


def test_config_yaml_keeps_its_sections_keys_and_order() -> None:
    written = yaml.safe_load(load_config().to_yaml())
    assert {section: list(values) for section, values in written.items()} == CONFIG_YAML_KEYS
    assert list(written) == list(CONFIG_YAML_KEYS)
    lora = yaml.safe_load(load_config(None, {"method.name": "lora"}).to_yaml())["method"]
    assert lora == {"name": "lora", "r": 8, "alpha": 16, "dropout": 0.1, "target_modules": None, "merge": False}
    assert written["train"]["epochs"] == 3.0 and isinstance(written["train"]["epochs"], float)


@pytest.mark.parametrize("run", ["completed_full", "completed_tfidf", "interrupted_full"])
def test_a_config_yaml_written_before_the_typed_config_loads_with_its_values(run: str) -> None:
    path = Path(__file__).parent / "fixtures" / "old_runs" / run / "config.yaml"
    saved = yaml.safe_load(path.read_text())
    config = Config.from_yaml(path)
    now = config.to_dict()
    for section, values in saved.items():
        assert {key: now[section][key] for key in values} == values, section


def test_the_json_schema_describes_every_key_and_each_method_by_name(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from distiltune.cli import app
    from distiltune.methods import get_method_config_class, method_names

    schema = Config.model_json_schema()
    definitions = schema["$defs"]
    for section in ("data", "model", "train", "run"):
        properties = definitions[schema["properties"][section]["$ref"].rsplit("/", 1)[1]]["properties"]
        assert set(properties) == set(CONFIG_YAML_KEYS[section])
        assert all(entry.get("description") for entry in properties.values()), section
    assert definitions["TrainConfig"]["properties"]["batch_size"]["minimum"] == 1
    assert definitions["TrainConfig"]["additionalProperties"] is False
    method = schema["properties"]["method"]
    assert method["discriminator"]["propertyName"] == "name"
    assert list(method["discriminator"]["mapping"]) == method_names()
    for name in method_names():
        variant = definitions[get_method_config_class(name).__name__]
        assert variant["properties"]["name"]["const"] == name and variant["additionalProperties"] is False
        assert set(variant["properties"]) == {"name", *get_method_config_class(name).model_fields}
        assert ("name" in variant.get("required", [])) == (name != "full")  # a method section without a name is full's
    assert definitions["LoraMethodConfig"]["properties"]["r"]["description"] == "Rank of the low-rank update matrices."

    output = tmp_path / "schema.json"
    result = CliRunner().invoke(app, ["config", "schema", "--output", str(output)])
    assert result.exit_code == 0, result.output
    written = json.loads(output.read_text())
    assert written["title"] == "distiltune run config" and written["properties"] == schema["properties"]
    printed = CliRunner().invoke(app, ["config", "schema"])
    assert json.loads(printed.stdout) == written
