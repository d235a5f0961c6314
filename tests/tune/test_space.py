"""Search spaces: default spaces per method, the YAML format, and one-line errors naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from distiltune.config import load_config
from distiltune.errors import ConfigError
from distiltune.tuning import default_space, parse_duration, resolve_space


def fixed_trial(values: dict) -> object:
    import optuna

    return optuna.trial.FixedTrial(values)


COMMON = {"train.lr", "train.batch_size", "train.epochs", "train.warmup_fraction", "train.weight_decay"}
EXTRA = {
    "full": set(),
    "head": set(),
    "lora": {"method.r", "method.alpha"},
    "prompt": {"method.num_virtual_tokens"},
    "prefix": {"method.num_virtual_tokens"},
}


@pytest.mark.parametrize("method", sorted(EXTRA))
def test_every_default_space_is_valid_for_its_method(method: str) -> None:
    space = resolve_space(None, load_config(None, {"method.name": method}))
    assert set(space) == COMMON | EXTRA[method]
    assert space["train.lr"].log and space["train.lr"].type == "float"


def test_a_method_without_a_default_space_asks_for_a_space_file() -> None:
    with pytest.raises(ConfigError, match="no default search space for method 'tfidf'. Pass --space FILE"):
        resolve_space(None, load_config(None, {"method.name": "tfidf"}))


def test_a_space_file_is_parsed_and_suggests_config_values(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(
        "train.lr: {type: float, low: 1e-5, high: 1e-3, log: true}\n"  # YAML 1.1 reads 1e-5 as a string
        "train.batch_size: {type: categorical, choices: [8, 16, 32]}\n"
        "train.epochs: {type: int, low: 1, high: 3}\n"
        "train.warmup_fraction: {type: float, low: 0.0, high: 0.2, step: 0.05}\n"
        "method.r: {type: int, low: 4, high: 32, log: true}\n"
        "train.scheduler: {type: categorical, choices: [linear, cosine]}\n"
    )
    space = resolve_space(path, load_config(None, {"method.name": "lora"}))
    assert list(space) == [
        "train.lr",
        "train.batch_size",
        "train.epochs",
        "train.warmup_fraction",
        "method.r",
        "train.scheduler",
    ]
    assert space["train.lr"].low == 1e-5 and space["train.lr"].high == 1e-3
    assert space["train.warmup_fraction"].to_dict() == {"type": "float", "low": 0.0, "high": 0.2, "step": 0.05}
    import optuna

    from distiltune.tuning.space import suggest

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        values = suggest(trial, space)
        assert 1e-5 <= values["train.lr"] <= 1e-3 and values["train.batch_size"] in (8, 16, 32)
        assert isinstance(values["train.epochs"], int) and 1 <= values["train.epochs"] <= 3
        assert isinstance(values["method.r"], int) and 4 <= values["method.r"] <= 32
        assert round(values["train.warmup_fraction"] / 0.05, 6).is_integer()
        assert values["train.scheduler"] in ("linear", "cosine")
        study.tell(trial, 0.0)
    distributions = trial.distributions
    assert distributions["train.lr"].log and distributions["method.r"].log and not distributions["train.epochs"].log
    assert isinstance(distributions["train.epochs"], optuna.distributions.IntDistribution)
    assert distributions["train.warmup_fraction"].step == 0.05
    values = {
        "train.lr": 3e-4,
        "train.batch_size": 16,
        "train.epochs": 2,
        "train.warmup_fraction": 0.1,
        "method.r": 8,
        "train.scheduler": "cosine",
    }
    assert suggest(fixed_trial(values), space) == values
    config = load_config(None, {"method.name": "lora", **values})
    assert config.method.r == 8 and config.train.scheduler == "cosine" and config.train.epochs == 2.0


BAD_SPACES = [
    (
        "train.lrr: {type: float, low: 1, high: 2}",
        "train.lrr: not a config key of method 'full'. Did you mean 'train.lr'?",
    ),
    ("method.r: {type: int, low: 4, high: 8}", "method.r: not a config key of method 'full'."),
    ("run.output_dir: {type: categorical, choices: [a, b]}", "run.output_dir: this key cannot be searched."),
    ("method.name: {type: categorical, choices: [full, lora]}", "method.name: this key cannot be searched."),
    ("train.lr: 3e-5", "train.lr: expected a mapping with a type (float, int or categorical), got '3e-5'."),
    (
        "train.lr: {type: uniform, low: 1, high: 2}",
        "train.lr: type must be one of float, int, categorical; got 'uniform'.",
    ),
    (
        "train.lr: {type: float, low: 1e-5, hihg: 1e-3}",
        "train.lr: unknown field 'hihg' for type float. Did you mean 'high'?",
    ),
    ("train.lr: {type: float, low: 1.0e-3, high: 1.0e-5}", "train.lr: low (0.001) must be below high (1e-05)."),
    ("train.lr: {type: float, high: 1.0e-3}", "train.lr: low must be a number, got None."),
    ("train.weight_decay: {type: float, low: 0, high: 0.1, log: true}", "train.weight_decay: log: true needs low > 0"),
    ("train.lr: {type: float, low: 0.1, high: 0.2, log: true, step: 0.1}", "step and log: true cannot be combined"),
    (
        "train.batch_size: {type: float, low: 8, high: 32}",
        "train.batch_size: type float does not suit this int setting.",
    ),
    ("train.batch_size: {type: int, low: 8.5, high: 32}", "train.batch_size: low must be a whole number for type int"),
    (
        "train.scheduler: {type: int, low: 1, high: 2}",
        "train.scheduler: type int does not suit this non-numeric setting.",
    ),
    ("train.batch_size: {type: categorical, choices: []}", "train.batch_size: choices must be a non-empty list"),
    ("train.batch_size: {type: categorical, choices: [8, 8]}", "train.batch_size: choices repeat a value."),
    (
        "train.batch_size: {type: int, low: 0, high: 32}",
        "train.batch_size: low 0 is not a valid value (train.batch_size must be >= 1, got 0.)",
    ),
    (
        "train.warmup_fraction: {type: float, low: 0.0, high: 1.5}",
        "train.warmup_fraction: high 1.5 is not a valid value (train.warmup_fraction must be in [0, 1), got 1.5.)",
    ),
    (
        "train.precision: {type: categorical, choices: [bf16, fp64]}",
        "train.precision: choice 'fp64' is not a valid value",
    ),
    ("- train.lr", "expected a mapping of config keys to distributions"),
    ("{}", "the search space is empty."),
]


@pytest.mark.parametrize(("text", "message"), BAD_SPACES)
def test_a_bad_space_file_is_a_one_line_error_naming_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as caught:
        resolve_space(path, load_config(None))
    text_of_error = str(caught.value)
    assert "\n" not in text_of_error
    assert text_of_error.startswith(f"{path}: ") and message in text_of_error


def test_a_missing_space_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Config file not found"):
        resolve_space(tmp_path / "nope.yaml", load_config(None))


def test_default_space_rejects_unknown_methods() -> None:
    with pytest.raises(ConfigError, match="no default search space for method 'untuned'"):
        default_space("untuned")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        (None, None),
    ],
)
def test_parse_duration(text: object, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2 hours", "h", "1x", "-5", "0"])
def test_parse_duration_rejects_non_durations(text: str) -> None:
    with pytest.raises(ConfigError, match="--timeout"):
        parse_duration(text)


def test_a_search_param_built_in_python_is_checked_as_a_space_file_entry() -> None:
    from distiltune.tuning.space import SearchParam

    param = SearchParam(key="train.epochs", type="int", low=1.0, high=3)
    assert (param.low, param.high) == (1, 3) and isinstance(param.low, int)
    assert param.model_dump() == {"type": "int", "low": 1, "high": 3}  # the space file's form, without the key
    with pytest.raises(ConfigError, match=r"^space: train.lr: low \(2\) must be below high \(1\).$"):
        SearchParam(key="train.lr", type="float", low=2, high=1)


def test_tune_yaml_is_a_typed_plan_that_reads_back(tmp_path: Path) -> None:
    from distiltune.tuning.search import PLAN_FILE, TunePlan
    from distiltune.tuning.space import SpaceFile

    base = load_config(None, {"method.name": "lora", "train.lr": 1e-3})
    plan = TunePlan(study="s", metric="f1_macro", created="now", space=SpaceFile(default_space("lora")), config=base)
    plan.write(tmp_path)
    written = yaml.safe_load((tmp_path / PLAN_FILE).read_text())
    assert list(written) == ["study", "storage", "metric", "direction", "created", "space", "config"]
    assert written["space"]["train.lr"] == {"type": "float", "low": 1e-4, "high": 5e-3, "log": True}
    assert written["config"] == base.to_dict()
    assert TunePlan.read(tmp_path) == plan
    written["config"]["train"]["lrr"] = 1
    (tmp_path / PLAN_FILE).write_text(yaml.safe_dump(written))
    with pytest.raises(ConfigError, match=f"^{tmp_path / PLAN_FILE}: train: unknown key 'lrr'"):
        TunePlan.read(tmp_path)
