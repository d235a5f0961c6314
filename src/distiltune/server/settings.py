"""Everything ``distiltune serve`` can be told: :class:`ServeSettings` (each field is a CLI flag) and the API key
it names."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from distiltune.errors import ConfigError
from distiltune.server.batcher import BatchingSettings

logger = logging.getLogger("distiltune")

#: Where ``serve`` hands its settings to worker processes (``--workers N``); never holds the API key itself.
SETTINGS_ENV = "DISTILTUNE_SERVE_SETTINGS"


@dataclass(frozen=True)
class ServeSettings:
    """Everything ``distiltune serve`` can be told (each field is a CLI flag)."""

    run_dir: str
    backend: str = "torch"
    device: str = "auto"
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    threads: int | None = None
    """torch intra-op threads per worker; unset: torch's default with one worker, else the cores / workers."""
    max_batch_size: int = 32
    max_batch_tokens: int = 8192
    max_wait_ms: float = 2.0
    max_client_batch_size: int = 32
    """Inputs per request (TEI's default, 32)."""
    max_input_chars: int = 50_000
    max_concurrent_requests: int = 128
    payload_limit: int = 2_000_000
    """Request body bytes (TEI's default, 2 MB)."""
    auto_truncate: bool = True
    """Truncation for requests that do not say (``truncate`` unset); ``Classifier.predict`` always truncates."""
    graceful_timeout: float = 30.0
    keep_alive: int = 75
    """Seconds an idle connection stays open. Longer than the idle expiry of clients and load balancers (httpx 5 s,
    AWS ALB 60 s; nginx's own default is 75 s), so they close idle connections first: at uvicorn's 5 s a client can
    send a request on a connection the server is closing in the same instant, and that request is lost."""
    api_key_env: str | None = None
    api_key_file: str | None = None

    def validate(self) -> ServeSettings:
        positive = {
            "--port": self.port,
            "--workers": self.workers,
            "--max-batch-size": self.max_batch_size,
            "--max-batch-tokens": self.max_batch_tokens,
            "--max-client-batch-size": self.max_client_batch_size,
            "--max-input-chars": self.max_input_chars,
            "--max-concurrent-requests": self.max_concurrent_requests,
            "--payload-limit": self.payload_limit,
            "--keep-alive": self.keep_alive,
        }
        if self.threads is not None:
            positive["--threads"] = self.threads
        for flag, value in positive.items():
            if value < 1:
                raise ConfigError(f"{flag} must be >= 1, got {value}.")
        if self.max_wait_ms < 0 or self.graceful_timeout < 0:
            raise ConfigError("--max-wait-ms and --graceful-timeout must be >= 0.")
        if self.api_key_env and self.api_key_file:
            raise ConfigError("Give --api-key-env or --api-key-file, not both.")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        return cls(**json.loads(text))

    @property
    def batching(self) -> BatchingSettings:
        return BatchingSettings(self.max_batch_size, self.max_batch_tokens, self.max_wait_ms)


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
