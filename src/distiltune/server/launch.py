"""Starting the server: uvicorn's options and logging, one process or ``--workers N``, and SIGTERM handling."""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from fastapi import FastAPI

from distiltune.server.app import create_app
from distiltune.server.settings import SETTINGS_ENV, ServeSettings, read_api_key

logger = logging.getLogger("distiltune")


def app_from_environment() -> FastAPI:
    """The app of one ``--workers N`` process: settings from :data:`SETTINGS_ENV`, model loaded at startup."""
    settings = ServeSettings.from_json(os.environ[SETTINGS_ENV])
    _set_threads(settings.threads or max(1, _cpu_count() // settings.workers))
    return create_app(settings, classifier=None, api_key=read_api_key(settings))


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """uvicorn's and the ``distiltune`` logger's output (applied in every worker process too)."""
    handler = {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"}},
        "handlers": {"stderr": handler},
        "loggers": {
            "distiltune": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }


def uvicorn_options(settings: ServeSettings) -> dict[str, Any]:
    """The ``uvicorn.Config`` keywords of these settings (the tests' live servers use them too)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_config": logging_config(),
        "access_log": False,  # the AccessLogMiddleware logs each request with its id
        "timeout_graceful_shutdown": settings.graceful_timeout,
        "timeout_keep_alive": settings.keep_alive,
        "server_header": False,
    }


def serve(settings: ServeSettings, classifier: Any | None = None) -> None:
    """Run the server until SIGTERM/SIGINT. Returns once in-flight requests are answered (or the grace period
    ends). ``classifier``: an already loaded one (one worker only)."""
    import uvicorn

    api_key = read_api_key(settings)
    if settings.host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        logger.warning("Serving on %s without an API key: anyone who reaches this port can use it.", settings.host)
    options = uvicorn_options(settings)
    if settings.workers > 1:
        os.environ[SETTINGS_ENV] = settings.to_json()
        uvicorn.run("distiltune.server.launch:app_from_environment", factory=True, workers=settings.workers, **options)
        return
    if settings.threads:
        _set_threads(settings.threads)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, classifier, api_key), **options))
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully, which would end the process
    # with status 143; a handler of ours in place turns that into a normal return (exit 0).
    previous = signal.signal(signal.SIGTERM, _stopped_on_purpose)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stopped_on_purpose(signum: int, frame: Any) -> None:
    logger.info("Stopped by signal %d after a graceful shutdown.", signum)


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
