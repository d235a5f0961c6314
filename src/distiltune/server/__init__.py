"""The HTTP server on the top floor, beside the CLI: ``distiltune serve`` and its client.

:mod:`.settings` (:class:`ServeSettings`, the API key), :mod:`.app` (the FastAPI app: routes, the per-process
state, TEI's request and response shapes from :mod:`.protocol`), :mod:`.middleware` (body limit, API key, access
log), :mod:`.batcher` (merging concurrent requests into model calls), :mod:`.metrics` (Prometheus),
:mod:`.launch` (uvicorn, workers, signals) and :mod:`.client` (:class:`Client`, HTTP only). It predicts through the
inference core (:mod:`distiltune.inference`) and nothing in the library imports it.

The names below load on first use: ``distiltune.Client`` must not pull in torch or FastAPI's app.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distiltune.server.app import ServerState, TokenCounter, create_app, load_classifier, model_dtype
    from distiltune.server.client import Client
    from distiltune.server.launch import app_from_environment, logging_config, serve, uvicorn_options
    from distiltune.server.settings import ServeSettings, read_api_key

_LAZY = {
    "ServeSettings": "distiltune.server.settings",
    "read_api_key": "distiltune.server.settings",
    "ServerState": "distiltune.server.app",
    "TokenCounter": "distiltune.server.app",
    "create_app": "distiltune.server.app",
    "load_classifier": "distiltune.server.app",
    "model_dtype": "distiltune.server.app",
    "app_from_environment": "distiltune.server.launch",
    "logging_config": "distiltune.server.launch",
    "serve": "distiltune.server.launch",
    "uvicorn_options": "distiltune.server.launch",
    "Client": "distiltune.server.client",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'distiltune.server' has no attribute {name!r}")


__all__ = [
    "Client",
    "ServeSettings",
    "ServerState",
    "TokenCounter",
    "app_from_environment",
    "create_app",
    "load_classifier",
    "logging_config",
    "model_dtype",
    "read_api_key",
    "serve",
    "uvicorn_options",
]
