"""The command line's conventions, from the command line: one table of config flags (cli/flags.py) shared by train,
compare and tune; booleans as ``--x/--no-x`` that leave the config alone when left out; help that shows the config's
real defaults and stays whole at 80 columns, without importing torch; ``--version``; ``distiltune methods``; mistakes
in the data reported before a run directory exists, and no resume hint where resuming cannot help."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from distiltune.cli import app, main
from distiltune.cli.compare import COMPARE_FLAGS
from distiltune.cli.flags import FLAGS
from distiltune.cli.train import TRAIN_FLAGS
from distiltune.cli.tune import TUNE_FLAGS
from distiltune.version import __version__

COMMAND_FLAGS = {"train": TRAIN_FLAGS, "compare": COMPARE_FLAGS, "tune": TUNE_FLAGS}
BOOLEAN_FLAGS = [name for name in TRAIN_FLAGS if FLAGS[name].type is bool]


def command_names() -> list[str]:
    return sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def run_main(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """``distiltune ARGS`` through the console-script entry point: (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["distiltune", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code, capsys.readouterr().err


# --- what each command passes on -------------------------------------------------------------------------------


@pytest.fixture
def called(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """train, compare and tune replaced by recorders of (config, overrides) that return an empty result."""
    import distiltune.comparison
    import distiltune.training
    import distiltune.tuning

    calls: list[dict[str, Any]] = []

    def recorder(result: Any) -> Any:
        def record(config: Any = None, overrides: Any = None, **options: Any) -> Any:
            calls.append({"config": config, "overrides": overrides or {}, **options})
            return result

        return record

    empty_run = SimpleNamespace(metrics={}, dir=Path("run"))
    empty_comparison = SimpleNamespace(dir=Path("c"), table=[], recommendation=None, report=Path("c/report.html"))
    empty_study = SimpleNamespace(
        trials=[], direction="maximize", study="s", metric="f1_macro", best_config=None, report=Path("t"),
        counts={"complete": 0, "pruned": 0, "fail": 0},
    )  # fmt: skip
    monkeypatch.setattr(distiltune.training, "train", recorder(empty_run))
    monkeypatch.setattr(distiltune.comparison, "compare", recorder(empty_comparison))
    monkeypatch.setattr(distiltune.tuning, "tune", recorder(empty_study))
    return calls


def sample_value(name: str) -> tuple[str, Any]:
    """A value to pass to a non-boolean flag, and the config value it must become."""
    flag = FLAGS[name]
    if name == "class-weights":
        return "{pos: 3}", {"pos": 3}
    return {int: ("7", 7), float: ("0.5", 0.5), str: (f"some-{name}", f"some-{name}")}[flag.type]


@pytest.mark.parametrize("command", list(COMMAND_FLAGS))
def test_every_flag_of_a_command_sets_its_config_key(command: str, called: list[dict[str, Any]]) -> None:
    args, expected = [command], {}
    for name in COMMAND_FLAGS[command]:
        if FLAGS[name].type is bool:
            args.append(f"--{name}")
            expected[FLAGS[name].key] = True
        else:
            text, value = sample_value(name)
            args += [f"--{name}", text]
            expected[FLAGS[name].key] = value
    result = CliRunner().invoke(app, [*args, "--set", "train.warmup_fraction=0"])
    assert result.exit_code == 0, result.output
    (call,) = called
    assert call["overrides"] == {**expected, "train.warmup_fraction": 0}


@pytest.mark.parametrize("command", list(COMMAND_FLAGS))
def test_flags_left_out_are_no_overrides(command: str, called: list[dict[str, Any]]) -> None:
    assert CliRunner().invoke(app, [command]).exit_code == 0
    assert called[0]["overrides"] in ({}, None)


def test_the_commands_share_one_flag_table() -> None:
    # Each flag has one meaning wherever it appears: compare and tune take a subset of train's flags.
    assert set(COMPARE_FLAGS) <= set(TRAIN_FLAGS) and set(TUNE_FLAGS) <= set(TRAIN_FLAGS)
    assert set(TRAIN_FLAGS) == set(FLAGS)
    assert len({flag.key for flag in FLAGS.values()}) == len(FLAGS)


@pytest.mark.parametrize("name", BOOLEAN_FLAGS)
def test_a_boolean_flag_turns_off_what_the_yaml_turned_on_and_is_no_override_when_left_out(
    name: str, called: list[dict[str, Any]], tmp_path: Path
) -> None:
    from distiltune.config import load_config

    flag = FLAGS[name]
    section, key = flag.key.split(".")
    settings: dict[str, Any] = {section: {key: True}}
    if section == "method":  # --merge is an option of LoRA
        settings[section]["name"] = "lora"
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(settings))

    def resolved(*extra: str) -> Any:
        called.clear()
        result = CliRunner().invoke(app, ["train", "--config", str(config_file), *extra])
        assert result.exit_code == 0, result.output
        config = load_config(called[0]["config"], called[0]["overrides"])
        return getattr(getattr(config, section), key)

    assert resolved() is True  # left out: the YAML's value stands
    assert resolved(f"--no-{name}") is False
    assert resolved(f"--{name}") is True
    config_file.write_text(yaml.safe_dump({**settings, section: {**settings[section], key: False}}))
    assert resolved(f"--{name}") is True


def test_merge_without_lora_says_to_use_method_lora(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, fixtures_dir: Path, tmp_path: Path
) -> None:
    args = ["train", "--merge", "--method", "full", "--dataset", str(fixtures_dir / "tiny.csv")]
    code, stderr = run_main([*args, "--output-dir", str(tmp_path)], monkeypatch, capsys)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in stderr
    assert "merge" in errors[0] and "lora" in errors[0]  # the option, and the method it belongs to
    assert not list(tmp_path.iterdir())


# --- help ------------------------------------------------------------------------------------------------------


def render_help(*args: str, **extra: Any) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], **extra)
    assert result.exit_code == 0, result.output
    return result.stdout


def shown_defaults(text: str) -> dict[str, str]:
    """Each option's ``[default: ...]``, from help rendered wide enough that no help text wraps (an option name
    longer than click's first column still puts its help on the next line)."""
    blocks: list[str] = []
    for line in text.splitlines():
        if re.match(r"  (-\w, )?--", line):
            blocks.append(line.strip())
        elif blocks and line.startswith("   "):
            blocks[-1] += " " + line.strip()
    defaults = {}
    for block in blocks:
        match = re.match(r"(?:-\w, )?(--[\w-]+).*\[default: (.*)\]$", block)
        if match:
            defaults[match.group(1)] = match.group(2)
    return defaults


def config_default(key: str) -> Any:
    """The config's own default of a dotted key (a method's option: with that method chosen)."""
    from distiltune.config import load_config

    section, name = key.split(".")
    config = load_config(None, {"method.name": "lora"} if key == "method.merge" else None)
    return getattr(getattr(config, section), name)


@pytest.mark.parametrize("command", list(COMMAND_FLAGS))
def test_help_shows_the_configs_own_defaults(command: str) -> None:
    defaults = shown_defaults(render_help(command, terminal_width=10_000))
    for name in COMMAND_FLAGS[command]:
        flag = FLAGS[name]
        shown, value = defaults[flag.option], config_default(flag.key)
        if value is None:  # resolved later: the help says how (the method's, the preset's, detected, ...)
            assert shown and shown == flag.default and shown != "None", name
        elif isinstance(value, bool):
            assert shown == ("on" if value else "off"), name
        elif isinstance(value, int | float):
            assert float(shown) == value, name
        else:
            assert shown == value, name
    # The ones a user asks about first.
    for option in ("--epochs", "--batch-size", "--model", "--max-length", "--lr", "--seed"):
        assert option in defaults or option not in render_help(command, terminal_width=10_000)
    if command == "train":
        assert {"--epochs": "3", "--batch-size": "16", "--seed": "42", "--method": "full"}.items() <= defaults.items()
        assert defaults["--lr"].startswith("the method's") and defaults["--max-length"].startswith("the preset's")


def test_serve_help_shows_the_settings_defaults() -> None:
    from distiltune.server import ServeSettings

    defaults = shown_defaults(render_help("serve", terminal_width=10_000))
    for name, field in ServeSettings.model_fields.items():
        option = "--" + name.replace("_", "-")
        if field.is_required() or field.default is None:
            assert option not in defaults
        elif field.annotation is bool:
            assert defaults[option] == (option[2:] if field.default else f"no-{option[2:]}")
        else:
            assert type(field.default)(defaults[option]) == field.default, option


@pytest.mark.parametrize("command", command_names())
def test_help_at_80_columns_keeps_every_option_name_whole(command: str) -> None:
    text = render_help(command, env={"COLUMNS": "80"})
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80, text
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    for parameter in click_command.params:
        for option in [*parameter.opts, *parameter.secondary_opts]:
            if option.startswith("-"):
                assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), (command, option)


def test_help_loads_neither_torch_nor_the_library() -> None:
    script = f"""
import json, sys
from distiltune.cli import app
for args in [["--help"], *[[name, "--help"] for name in {command_names()!r}]]:
    try:
        app(args)
    except SystemExit:
        pass
heavy = ("torch", "transformers", "datasets", "pandas", "sklearn", "distiltune.config", "distiltune.training")
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in heavy or name in heavy)))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"distiltune {__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", __version__)


def test_methods_lists_every_registered_method_with_its_learning_rate() -> None:
    from distiltune.methods import get_method, get_method_config_class, method_names

    result = CliRunner().invoke(app, ["methods"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert list(lines) == method_names()
    for name, line in lines.items():
        method = get_method(name)
        assert method.description in line
        lr = line.split()[2] if line.split()[1] == "lr" else None
        if method.trains and method.trains_with_trainer:
            assert float(lr) == get_method_config_class(name).default_lr
        else:
            assert lr is None
    # Help texts send the reader here instead of naming the methods.
    for command in ("train", "tune", "compare"):
        assert "distiltune methods" in render_help(command)


# --- mistakes before a run directory exists --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "fragment"),
    [("no_such_file.csv", "Data file not found: no_such_file.csv"), ("imbd", "Did you mean the preset 'imdb'?")],
)
def test_a_typo_in_dataset_leaves_no_run_directory(
    dataset: str, fragment: str, tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    output = tmp_path / "runs"
    args = ["train", "--model", tiny_model, "--dataset", dataset, "--output-dir", str(output)]
    code, stderr = run_main(args, monkeypatch, capsys)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and fragment in errors[0]
    assert not output.exists()


def test_a_setting_the_model_or_the_data_refuses_leaves_no_run_directory(
    tiny_model: str, fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    base = ["train", "--model", tiny_model, "--dataset", str(fixtures_dir / "tiny.csv"), "--text-column", "review"]
    base += ["--label-column", "sentiment", "--output-dir", str(tmp_path), "--name", "run"]
    for extra, message in (
        (["--max-length", "4096"], "exceeds the model's limit"),  # judged against the encoder's config
        (["--class-weights", "{nope: 2}"], "unknown label 'nope'"),  # judged against the data's labels
        (["--report-to", "wandb"], "needs the wandb package"),
    ):
        code, stderr = run_main([*base, *extra], monkeypatch, capsys)
        assert code == 2 and message in stderr and "--resume" not in stderr, extra
        assert not (tmp_path / "run").exists(), extra


def test_a_run_that_failed_on_a_user_error_has_no_resume_hint(
    tiny_model: str, fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from distiltune.errors import ModelError
    from distiltune.training import pipeline

    def unloadable(prepared: Any) -> Any:  # e.g. weights that do not fit the architecture
        raise ModelError("the weights do not load.", "Check the model folder.")

    monkeypatch.setattr(pipeline, "build_model", unloadable)
    args = ["train", "--model", tiny_model, "--dataset", str(fixtures_dir / "tiny.csv"), "--text-column", "review"]
    args += ["--label-column", "sentiment", "--output-dir", str(tmp_path), "--name", "run"]
    code, stderr = run_main(args, monkeypatch, capsys)
    assert code == 2 and "the weights do not load" in stderr and "--resume" not in stderr
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "failed" and "the weights do not load" in status["error"]
    assert "resume" not in status
    # What train logged while it loaded the data, before the run directory existed, is in the run's log all the same.
    assert "No validation split: held out a stratified 10% of train" in (tmp_path / "run" / "train.log").read_text()


def test_help_lists_train_first_and_the_helpers_last() -> None:
    commands = [line.split()[0] for line in render_help().split("Commands:")[1].splitlines() if line.strip()]
    assert commands[:3] == ["train", "evaluate", "predict"]
    assert commands[-3:] == ["methods", "presets", "config"]
