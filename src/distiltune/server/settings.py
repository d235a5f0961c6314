"""Everything ``distiltune serve`` can be told: :class:`ServeSettings` (each field is a CLI flag) and the API key
it names."""

from __future__ import annotations

import difflib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from distiltune.errors import ConfigError

if TYPE_CHECKING:
    from distiltune.server.batcher import BatchingSettings

logger = logging.getLogger("distiltune")

#: Where ``serve`` hands its settings to worker processes (``--workers N``); never holds the API key itself.
SETTINGS_ENV = "DISTILTUNE_SERVE_SETTINGS"


class ServeSettings(BaseModel):
    """Everything ``distiltune serve`` can be told. Each field is a flag of the command (``max_batch_size`` is
    ``--max-batch-size``; the required ``run_dir`` is its argument), and the first paragraph of the field's docstring
    is the flag's help: a new setting is one field here. Invalid values raise a one-line :class:`ConfigError` that
    names the flag."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    run_dir: str
    """A run directory."""
    backend: str = "torch"
    """torch, or onnx: the run's ONNX export (int8 when present)."""
    device: str = "auto"
    """auto, cpu, cuda or mps (torch backend)."""
    host: str = "127.0.0.1"
    """Interface to bind; 0.0.0.0 exposes the server (use an API key)."""
    port: int = Field(8080, ge=1)
    """TCP port."""
    workers: int = Field(1, ge=1)
    """Server processes, each with its own model copy."""
    threads: int | None = Field(None, ge=1)
    """torch threads per process (default: torch's own with one worker, else all cores / --workers)."""
    max_batch_size: int = Field(32, ge=1)
    """Inputs merged into one model call."""
    max_batch_tokens: int = Field(8192, ge=1)
    """Padded tokens (rows x longest row) per model call."""
    max_wait_ms: float = Field(2.0, ge=0)
    """How long a batch that is not full waits for more requests while the model idles."""
    max_client_batch_size: int = Field(32, ge=1)
    """Inputs per request (more: 413).

    TEI's default, 32."""
    max_input_chars: int = Field(50_000, ge=1)
    """Characters per text (more: 413)."""
    max_concurrent_requests: int = Field(128, ge=1)
    """Requests in flight per process; past it 429 with Retry-After."""
    payload_limit: int = Field(2_000_000, ge=1)
    """Request body bytes (more: 413).

    TEI's default, 2 MB."""
    auto_truncate: bool = True
    """Truncate over-long inputs of requests that do not set 'truncate' (off: 413 for them).

    Only requests that do not say (``truncate`` unset); ``Classifier.predict`` always truncates."""
    graceful_timeout: float = Field(30.0, ge=0)
    """Seconds in-flight requests get to finish after SIGTERM."""
    keep_alive: int = Field(75, ge=1)
    """Seconds an idle connection stays open (longer than clients' and balancers' own).

    Longer than the idle expiry of clients and load balancers (httpx 5 s, AWS ALB 60 s; nginx's own default is
    75 s), so they close idle connections first: at uvicorn's 5 s a client can send a request on a connection the
    server is closing in the same instant, and that request is lost."""
    api_key_env: str | None = None
    """Require 'Authorization: Bearer <key>', the key read from this environment variable."""
    api_key_file: str | None = None
    """Like --api-key-env, the key read from a file."""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise ConfigError(*_one_line(err)) from None

    @model_validator(mode="after")
    def _one_api_key(self) -> ServeSettings:
        if self.api_key_env and self.api_key_file:
            raise ValueError("Give --api-key-env or --api-key-file, not both.")
        return self

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        return cls(**json.loads(text))

    @property
    def batching(self) -> BatchingSettings:
        from distiltune.server.batcher import BatchingSettings  # numpy: not needed by `distiltune --help`

        return BatchingSettings(self.max_batch_size, self.max_batch_tokens, self.max_wait_ms)


def flag_name(field: str) -> str:
    """The ``distiltune serve`` flag of a :class:`ServeSettings` field."""
    return "--" + field.replace("_", "-")


def _one_line(err: ValidationError) -> tuple[str, str | None]:
    """pydantic's first error as the message (and hint) of a ConfigError, naming the flag."""
    error = err.errors(include_url=False)[0]
    field = str(error["loc"][0]) if error["loc"] else None
    flag = flag_name(field) if field else None
    context = error.get("ctx") or {}
    kind = error["type"]
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(field or "", ServeSettings.model_fields, n=1)
        hint = f"Did you mean '{close[0]}'?" if close else f"Settings are: {', '.join(ServeSettings.model_fields)}."
        return f"Unknown serve setting '{field}'.", hint
    if kind in ("greater_than_equal", "greater_than"):
        sign = ">=" if kind == "greater_than_equal" else ">"
        bound = context.get("ge", context.get("gt"))
        return f"{flag} must be {sign} {bound:g}, got {error['input']}.", None
    if kind == "value_error":  # a model validator's sentence, which names the flags itself
        return str(context.get("error", error["msg"])), None
    if kind == "missing":
        return f"{flag} is required.", None
    return f"{flag}: {error['msg'][0].lower()}{error['msg'][1:]}, got {error['input']!r}.", None


def read_api_key(settings: ServeSettings) -> str | None:
    """The key named by ``--api-key-env`` or ``--api-key-file``; None without either."""
    if settings.api_key_env:
        key = os.environ.get(settings.api_key_env, "").strip()
        if not key:
            raise ConfigError(
                f"--api-key-env {settings.api_key_env}: that environment variable is unset or empty.",
                f"Export {settings.api_key_env}=<key>, or drop the flag.",
            )
        return key
    if settings.api_key_file:
        path = Path(settings.api_key_file)
        if not path.is_file():
            raise ConfigError(f"--api-key-file {path}: no such file.", "Write the key into it, or drop the flag.")
        key = path.read_text(encoding="utf-8").strip()
        if not key:
            raise ConfigError(f"--api-key-file {path} is empty.", "Write the key into it, or drop the flag.")
        return key
    return None
