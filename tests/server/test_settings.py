"""``ServeSettings``: a pydantic model whose fields are ``distiltune serve``'s flags, one each, every value reaching
the settings; invalid values are one-line ConfigErrors that name the flag; settings travel to worker processes as
JSON."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import distiltune.server as server_module
from distiltune.cli import app, main
from distiltune.errors import ConfigError
from distiltune.server import ServeSettings

#: A value for every field other than its default (run_dir is the command's argument).
NOT_DEFAULTS: dict[str, Any] = {
    "backend": "onnx",
    "device": "cpu",
    "host": "0.0.0.0",
    "port": 9001,
    "workers": 3,
    "threads": 2,
    "max_batch_size": 5,
    "max_batch_tokens": 999,
    "max_wait_ms": 7.5,
    "max_client_batch_size": 6,
    "max_input_chars": 123,
    "max_concurrent_requests": 4,
    "payload_limit": 4567,
    "auto_truncate": False,
    "graceful_timeout": 1.5,
    "keep_alive": 11,
    "api_key_env": "SERVE_KEY",
    "api_key_file": None,  # not both: checked below
}


def serve_options() -> dict[str, list[str]]:
    """Per parameter of the serve command, its option strings (an argument: its name)."""
    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    return {parameter.name: [*parameter.opts, *parameter.secondary_opts] for parameter in command.params}


def test_every_setting_is_a_flag_and_every_flag_a_setting() -> None:
    options = serve_options()
    assert set(options) == set(ServeSettings.model_fields) | {"debug"}
    for name in ServeSettings.model_fields:
        flag = "--" + name.replace("_", "-")
        expected = [name] if name == "run_dir" else [flag, f"--no-{flag[2:]}"] if name == "auto_truncate" else [flag]
        assert options[name] == expected
    assert set(NOT_DEFAULTS) == set(ServeSettings.model_fields) - {"run_dir"}


def test_every_flag_value_reaches_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    started: list[ServeSettings] = []
    monkeypatch.setattr(server_module, "load_classifier", lambda settings: object())
    monkeypatch.setattr(server_module, "read_api_key", lambda settings: "key")
    monkeypatch.setattr(server_module, "serve", lambda settings, classifier=None: started.append(settings))
    args = ["serve", str(tmp_path)]
    for name, value in NOT_DEFAULTS.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else f"--no-{flag[2:]}")
        elif value is not None:
            args += [flag, str(value)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (settings,) = started
    assert settings.model_dump() == {"run_dir": str(tmp_path), **NOT_DEFAULTS}
    for name, value in NOT_DEFAULTS.items():
        assert value != ServeSettings.model_fields[name].default or value is None, name


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"port": 0}, "--port must be >= 1, got 0."),
        ({"workers": -2}, "--workers must be >= 1, got -2."),
        ({"threads": 0}, "--threads must be >= 1, got 0."),
        ({"max_client_batch_size": 0}, "--max-client-batch-size must be >= 1, got 0."),
        ({"max_wait_ms": -1.0}, "--max-wait-ms must be >= 0, got -1.0."),
        ({"graceful_timeout": -0.5}, "--graceful-timeout must be >= 0, got -0.5."),
        ({"api_key_env": "K", "api_key_file": "k.txt"}, "Give --api-key-env or --api-key-file, not both."),
        ({"prot": 80}, "Unknown serve setting 'prot'. Did you mean 'port'?"),
        ({"port": "eighty"}, "--port: input should be a valid integer"),
    ],
)
def test_invalid_settings_are_one_line_config_errors_naming_the_flag(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        ServeSettings(run_dir="x", **values)
    assert raised.value.one_line().startswith(message), raised.value.one_line()
    assert "\n" not in raised.value.one_line()


def test_a_bad_flag_value_is_one_error_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "argv", ["distiltune", "serve", str(tmp_path), "--max-batch-tokens", "0"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --max-batch-tokens must be >= 1, got 0."


def test_settings_are_frozen_and_round_trip_through_json() -> None:
    settings = ServeSettings(run_dir="runs/x", **{**NOT_DEFAULTS, "api_key_env": None, "api_key_file": "k"})
    assert ServeSettings.from_json(settings.to_json()) == settings
    with pytest.raises(Exception, match="frozen"):
        settings.port = 1  # type: ignore[misc]
    assert settings.batching.max_batch_tokens == 999 and settings.batching.max_wait_ms == 7.5
    # Every field documents itself: its docstring is the flag's help.
    assert all(field.description for field in ServeSettings.model_fields.values())
