"""Tiny runs (one single-text, one sentence-pair) trained once per session, and a live server on a free port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

import distiltune
from distiltune.serving.server import ServeSettings, create_app

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def overrides(tiny_model: str, output_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "model.name": tiny_model,
        "data.dataset": str(FIXTURES / "tiny.csv"),
        "data.text_column": "review",
        "data.label_column": "sentiment",
        "data.max_length": 16,
        "data.validation_fraction": 0.25,
        "train.epochs": 1,
        "train.batch_size": 4,
        "train.lr": 1e-3,
        "train.precision": "fp32",
        "run.output_dir": str(output_dir),
        **extra,
    }


@pytest.fixture(scope="session")
def text_run(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return distiltune.train(None, overrides(tiny_model, tmp_path_factory.mktemp("runs"))).dir


@pytest.fixture(scope="session")
def pair_run(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pair_overrides = overrides(
        tiny_model,
        tmp_path_factory.mktemp("runs"),
        **{"data.dataset": str(FIXTURES / "pairs.tsv"), "data.text_column": None, "data.label_column": None},
    )
    return distiltune.train(None, pair_overrides).dir


# fp32: the tiny models' scores differ in the fifth decimal, which bf16 (auto on some CPUs) would round away.
@pytest.fixture(scope="session")
def text_classifier(text_run: Path) -> Any:
    return distiltune.load(text_run, precision="fp32")


@pytest.fixture(scope="session")
def pair_classifier(pair_run: Path) -> Any:
    return distiltune.load(pair_run, precision="fp32")


@contextlib.contextmanager
def running_server(classifier: Any, api_key: str | None = None, **settings: Any) -> Iterator[str]:
    """A live server on a free port of 127.0.0.1; yields its URL."""
    app = create_app(ServeSettings(run_dir=str(classifier.run_dir), **settings), classifier, api_key=api_key)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture(scope="session")
def live_server() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """``with live_server(classifier, api_key=None, **ServeSettings fields) as url:`` a server in a thread."""
    return running_server
