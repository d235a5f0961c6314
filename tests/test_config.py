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
