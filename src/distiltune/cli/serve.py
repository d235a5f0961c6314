"""``distiltune serve``: the HTTP server over a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distiltune.cli.common import (
    Debug,
    app,
    setup_logging,
)


@app.command()
def serve(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    backend: Annotated[str, typer.Option(help="torch, or onnx: the run's ONNX export (int8 when present).")] = "torch",
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the server (use an API key).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    api_key_env: Annotated[
        str | None, typer.Option(help="Require 'Authorization: Bearer <key>', the key read from this env variable.")
    ] = None,
    api_key_file: Annotated[Path | None, typer.Option(help="Like --api-key-env, the key read from a file.")] = None,
    workers: Annotated[int, typer.Option(help="Server processes, each with its own model copy.")] = 1,
    threads: Annotated[
        int | None, typer.Option(help="torch threads per process (default: all cores / --workers).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps (torch backend).")] = "auto",
    max_batch_size: Annotated[int, typer.Option(help="Inputs merged into one model call.")] = 32,
    max_batch_tokens: Annotated[int, typer.Option(help="Padded tokens (rows x longest row) per model call.")] = 8192,
    max_wait_ms: Annotated[
        float, typer.Option(help="How long a batch that is not full waits for more requests while the model idles.")
    ] = 2.0,
    max_client_batch_size: Annotated[int, typer.Option(help="Inputs per request (more: 413).")] = 32,
    max_input_chars: Annotated[int, typer.Option(help="Characters per text (more: 413).")] = 50_000,
    max_concurrent_requests: Annotated[
        int, typer.Option(help="Requests in flight per process; past it 429 with Retry-After.")
    ] = 128,
    payload_limit: Annotated[int, typer.Option(help="Request body bytes (more: 413).")] = 2_000_000,
    auto_truncate: Annotated[
        bool,
        typer.Option(
            "--auto-truncate/--no-auto-truncate",
            help="Truncate over-long inputs of requests that do not set 'truncate' (off: 413 for them).",
        ),
    ] = True,
    graceful_timeout: Annotated[
        float, typer.Option(help="Seconds in-flight requests get to finish after SIGTERM.")
    ] = 30.0,
    keep_alive: Annotated[
        int, typer.Option(help="Seconds an idle connection stays open (longer than clients' and balancers' own).")
    ] = 75,
    debug: Debug = False,
) -> None:
    """Serve a run over HTTP: POST /predict (text-embeddings-inference's shape), /health, /info, /metrics, /docs."""
    from distiltune.server import ServeSettings, load_classifier, read_api_key, serve

    setup_logging(quiet=True)  # no progress bars while loading; the server then logs through its own handler
    settings = ServeSettings(
        run_dir=str(run_dir),
        backend=backend,
        device=device,
        host=host,
        port=port,
        workers=workers,
        threads=threads,
        max_batch_size=max_batch_size,
        max_batch_tokens=max_batch_tokens,
        max_wait_ms=max_wait_ms,
        max_client_batch_size=max_client_batch_size,
        max_input_chars=max_input_chars,
        max_concurrent_requests=max_concurrent_requests,
        payload_limit=payload_limit,
        auto_truncate=auto_truncate,
        graceful_timeout=graceful_timeout,
        keep_alive=keep_alive,
        api_key_env=api_key_env,
        api_key_file=str(api_key_file) if api_key_file else None,
    ).validate()
    read_api_key(settings)  # a missing key fails now, not after the model has loaded
    # Loaded here so a bad run directory is a one-line error; worker processes (--workers N) load their own copy.
    classifier = load_classifier(settings)
    serve(settings, classifier if workers == 1 else None)
