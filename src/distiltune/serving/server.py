"""``distiltune serve``: an HTTP server for a trained run (FastAPI + uvicorn), with TEI's ``/predict`` shape.

Routes: ``POST /predict``, ``GET /health``, ``GET /info``, ``GET /metrics`` (Prometheus), ``GET /docs`` and
``/openapi.json``. Requests are validated and their inputs counted in tokens on the event loop's side, then wait
in a :class:`~distiltune.serving.batcher.DynamicBatcher`, which merges concurrent requests into one call of the
classifier's own ``predict_proba`` / ``predict_logits`` (so whatever a run applies at prediction, the server
applies too) in a worker thread. Limits answer 4xx JSON errors (see :mod:`distiltune.serving.protocol`); past
``max_concurrent_requests`` a request gets 429 with ``Retry-After`` instead of a place in an unbounded queue.
With an API key every route but ``/health`` needs ``Authorization: Bearer <key>`` (compared in constant time).
SIGTERM: uvicorn stops accepting connections, in-flight requests finish within ``graceful_timeout`` seconds, and
the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import math
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from distiltune import __version__, runs
from distiltune.config import Config
from distiltune.errors import ConfigError
from distiltune.serving.batcher import BatchingSettings, BatchReport, DynamicBatcher, QueuedInput
from distiltune.serving.classifier import load
from distiltune.serving.metrics import ServingMetrics
from distiltune.serving.onnx_runtime import REPORT_FILE
from distiltune.serving.protocol import (
    ErrorResponse,
    HealthResponse,
    InfoResponse,
    PredictRequest,
    PredictResponse,
    RequestRejected,
    parse_inputs,
)

logger = logging.getLogger("distiltune")

#: Where ``serve`` hands its settings to worker processes (``--workers N``); never holds the API key itself.
SETTINGS_ENV = "DISTILTUNE_SERVE_SETTINGS"
#: "Client closed request": logged for a request whose client went away before its answer.
CLIENT_GONE = 499
RETRY_AFTER_SECONDS = 1
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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


def load_classifier(settings: ServeSettings) -> Any:
    """The run's classifier (safetensors or ONNX weights from the run directory); refuses remote code."""
    config_file = Path(settings.run_dir) / runs.CONFIG_FILE
    if config_file.is_file() and Config.from_yaml(config_file).model.trust_remote_code:
        raise ConfigError(
            f"{settings.run_dir} was trained with model.trust_remote_code: the server runs no code from a model repo.",
            "Serve a run of a built-in transformers architecture.",
        )
    return load(settings.run_dir, backend=settings.backend, device=settings.device)


class TokenCounter:
    """Untruncated token counts of requests' inputs, for the over-length check and the batches' token budget.

    It never touches the classifier's tokenizer, which the inference thread reconfigures on each call (HF fast
    tokenizers keep truncation settings as mutable state): a fast tokenizer gets its own copy of the Rust
    tokenizer with truncation and padding off, whose ``encode_batch`` is safe to call from several threads.
    """

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.max_length = max_length
        self._backend: Any = None
        self._fallback: Any = None
        self._lock = threading.Lock()
        if tokenizer is None:  # TF-IDF: words stand in for tokens; no length limit applies
            return
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            from tokenizers import Tokenizer

            self._backend = Tokenizer.from_str(backend.to_str())
            self._backend.no_truncation()
            self._backend.no_padding()
        else:
            import copy

            self._fallback = copy.deepcopy(tokenizer)

    @property
    def has_limit(self) -> bool:
        return self._backend is not None or self._fallback is not None

    def count(self, texts: list[str], pairs: list[str] | None) -> list[int]:
        if self._backend is not None:
            inputs: list[Any] = list(zip(texts, pairs, strict=True)) if pairs is not None else texts
            return [len(encoding.ids) for encoding in self._backend.encode_batch(inputs)]
        if self._fallback is not None:
            with self._lock:
                encoded = self._fallback(texts, pairs, truncation=False, padding=False)
            return [len(ids) for ids in encoded["input_ids"]]
        words = [len(text.split()) for text in texts]
        return [count + len(pair.split()) for count, pair in zip(words, pairs, strict=True)] if pairs else words


class ServerState:
    """One process's model, batcher, metrics and counters."""

    def __init__(self, settings: ServeSettings, classifier: Any | None, api_key: str | None) -> None:
        self.settings = settings
        self.classifier = classifier
        self.api_key = api_key
        self.ready = False
        self.in_flight = 0
        self.metrics = ServingMetrics(queue_depth=lambda: self.queue_depth, in_flight=lambda: self.in_flight)
        self.batcher: DynamicBatcher | None = None
        self.counter: TokenCounter | None = None
        self.model_dtype = ""  # fixed for the server's life: found once, in start()

    @property
    def queue_depth(self) -> int:
        return self.batcher.queue_depth if self.batcher is not None else 0

    async def start(self) -> None:
        if self.classifier is None:
            self.classifier = await asyncio.to_thread(load_classifier, self.settings)
        classifier = self.classifier
        self.counter = TokenCounter(classifier.tokenizer, classifier.max_length)
        self.model_dtype = model_dtype(classifier)
        started = time.perf_counter()
        await asyncio.to_thread(warm_up, classifier)
        self.batcher = DynamicBatcher(
            self.run_batch,
            self.settings.batching,
            on_batch=self._observe_batch,
            on_drop=lambda count: self.metrics.dropped.inc(count),
        )
        self.batcher.start()
        self.ready = True
        logger.info(
            "Serving %s (%s backend, %s, %s labels, max length %d); warmed up in %.2f s",
            self.settings.run_dir,
            classifier.backend,
            self.model_dtype,
            len(classifier.label_names),
            classifier.max_length,
            time.perf_counter() - started,
        )

    async def stop(self) -> None:
        self.ready = False
        if self.batcher is not None:
            await self.batcher.stop()

    def run_batch(
        self, texts: list[str], pairs: list[str] | None, truncation_side: str | None, raw: bool
    ) -> np.ndarray:
        """One model call, always through the classifier's own prediction methods."""
        if raw:
            return self.classifier.predict_logits(texts, pairs, truncation_side=truncation_side)
        return self.classifier.predict_proba(texts, pairs, truncation_side=truncation_side)

    def _observe_batch(self, report: BatchReport) -> None:
        self.metrics.observe_batch(report.size, report.seconds)

    def healthy(self) -> bool:
        return self.ready and self.batcher is not None and self.batcher.running

    async def predict(self, body: PredictRequest, request: Request) -> Response:
        started = time.perf_counter()
        settings, classifier = self.settings, self.classifier
        parsed = parse_inputs(body.inputs, classifier.is_pair)
        count = len(parsed.texts)
        if count > settings.max_client_batch_size:
            raise RequestRejected(
                "validation",
                f"batch size {count} > maximum allowed batch size {settings.max_client_batch_size}: "
                "split the request.",
            )
        check_texts(parsed.texts, parsed.pairs, settings.max_input_chars)
        counter = self.counter
        assert counter is not None and self.batcher is not None
        tokens = await asyncio.to_thread(counter.count, parsed.texts, parsed.pairs)
        tokenized = time.perf_counter()
        truncate = settings.auto_truncate if body.truncate is None else body.truncate
        max_length = classifier.max_length
        # A run that reads long inputs in windows (data.long_text=chunks) cuts nothing below its window cap: it
        # takes long inputs whatever `truncate` says, and each costs the batch up to that many windows of tokens.
        windows = classifier.long_text.window_cap if classifier.long_text.mode == "chunks" else 1
        if not truncate and counter.has_limit and windows == 1:
            for index, length in enumerate(tokens):
                if length > max_length:
                    raise RequestRejected(
                        "validation",
                        f"inputs[{index}] has {length} tokens, more than the model's max length {max_length}: "
                        "send truncate: true, or shorten it.",
                    )
        if counter.has_limit:
            tokens = [min(length, windows * max_length) for length in tokens]
        direction = body.truncation_direction.lower() if body.truncation_direction is not None else None
        queued = self.batcher.submit(parsed.texts, parsed.pairs, tokens, direction, body.raw_scores)
        rows = await _rows_unless_client_leaves(request, queued)
        if rows is None:
            return Response(status_code=CLIENT_GONE)
        failed = next((row for row in rows if isinstance(row, BaseException)), None)
        if failed is not None:
            raise RequestRejected("backend", f"Inference failed ({type(failed).__name__}); see the server log.")
        predictions = [self._predictions(row, body.top_k, body.raw_scores) for row in rows]
        content: Any = predictions[0] if parsed.single else predictions
        finished = time.perf_counter()
        headers = {
            "x-total-time": _ms(finished - started),
            "x-tokenization-time": _ms(tokenized - started),
            "x-queue-time": _ms(sum(q.started - q.enqueued for q in queued) / count),
            "x-inference-time": _ms(sum(q.inference_seconds for q in queued) / count),
            "x-compute-characters": str(sum(map(len, parsed.texts)) + sum(map(len, parsed.pairs or []))),
            "x-compute-tokens": str(sum(tokens)),
        }
        return JSONResponse(content, headers=headers)

    def _predictions(self, row: np.ndarray, top_k: int | None, raw: bool) -> list[dict[str, Any]]:
        if np.isnan(row).any():
            raise RequestRejected("backend", "The model returned NaN scores; see the server log.")
        classifier = self.classifier
        names = classifier.label_names
        order = np.argsort(-row, kind="stable")
        if classifier.calibration.threshold is not None:
            # A tuned decision threshold may pick a label other than the highest score: it goes first, as the
            # answer's label, like Classifier.predict's "label".
            probabilities = row if not raw else classifier.calibration.probabilities(row[None, :])[0]
            decided = int(classifier.decide(probabilities[None, :])[0])
            order = np.array([decided, *[i for i in order if i != decided]])
        order = order[: top_k or len(names)]
        # A TF-IDF run gives -inf to a label absent from its training split: JSON has no infinity.
        largest = float(np.finfo(np.float64).max)
        return [{"label": names[i], "score": max(-largest, min(largest, float(row[i])))} for i in order]

    def info(self) -> dict[str, Any]:
        classifier, settings = self.classifier, self.settings
        names = list(classifier.label_names)
        base_model = str(classifier.config.model.name)
        if Path(base_model).is_absolute():  # a local folder: its name, not the server's file layout
            base_model = Path(base_model).name
        return {
            "model_id": Path(settings.run_dir).name,
            "base_model": base_model,
            "method": str(classifier.config.method.name),
            "labels": names,
            "model_type": {
                "classifier": {
                    "id2label": {str(i): name for i, name in enumerate(names)},
                    "label2id": {name: i for i, name in enumerate(names)},
                }
            },
            "input": "pair" if classifier.is_pair else "text",
            "is_pair": bool(classifier.is_pair),
            "max_input_length": int(classifier.max_length),
            "max_length": int(classifier.max_length),
            "long_text": classifier.long_text.mode,
            "temperature": float(classifier.calibration.temperature),
            "decision_threshold": classifier.calibration.threshold,
            "backend": str(classifier.backend),
            "model_dtype": self.model_dtype or model_dtype(classifier),  # asked for while start() warms up
            "version": __version__,
            "auto_truncate": settings.auto_truncate,
            "max_client_batch_size": settings.max_client_batch_size,
            "max_input_chars": settings.max_input_chars,
            "max_concurrent_requests": settings.max_concurrent_requests,
            "max_batch_requests": settings.max_batch_size,
            "max_batch_tokens": settings.max_batch_tokens,
            "max_wait_ms": settings.max_wait_ms,
            "payload_limit": settings.payload_limit,
        }


#: TEI's names for the number formats a model computes in.
DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def model_dtype(classifier: Any) -> str:
    """What the model computes in, as TEI's /info names it: the torch precision the classifier resolved (``auto``
    measures bf16 at load time, so it can differ between machines), or an ONNX export's weights (int8 when
    quantized)."""
    if classifier.backend == "onnx":
        report_path = Path(classifier.model.path).parent / REPORT_FILE
        report = runs.read_json(report_path) if report_path.is_file() else {}
        return "int8" if report.get("quantize") == "int8" else "float32"
    return DTYPE_NAMES.get(str(classifier.precision), str(classifier.precision))


def check_texts(texts: list[str], pairs: list[str] | None, max_chars: int) -> None:
    """422 for an empty text, 413 for one over ``max_chars`` characters."""
    parts = [(f"inputs[{index}]", text) for index, text in enumerate(texts)]
    parts += [(f"inputs[{index}] (its text_pair)", pair) for index, pair in enumerate(pairs or [])]
    for name, text in parts:
        if not text.strip():
            raise RequestRejected("invalid_input", f"{name} is empty: send some text.")
        if len(text) > max_chars:
            raise RequestRejected(
                "validation", f"{name} has {len(text)} characters, more than --max-input-chars {max_chars}."
            )


def warm_up(classifier: Any) -> None:
    """One short and one full-length input, so the first request does not pay for lazy initialisation."""
    texts = ["warm up", " ".join(["warm"] * max(1, classifier.max_length))]
    classifier.predict_proba(texts, texts if classifier.is_pair else None)


async def _rows_unless_client_leaves(request: Request, queued: list[QueuedInput]) -> list[Any] | None:
    """Each input's row (or its exception), or None when the client disconnects first (its inputs are dropped)."""
    futures = [item.future for item in queued]
    results = asyncio.gather(*futures, return_exceptions=True)
    gone = asyncio.ensure_future(_client_disconnected(request))
    try:
        done, _ = await asyncio.wait({results, gone}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        for future in futures:
            future.cancel()
        raise
    finally:
        if not gone.done():
            gone.cancel()
    if results in done:
        return list(results.result())
    for future in futures:
        future.cancel()
    return None


async def _client_disconnected(request: Request) -> None:
    # The body has been read already: the next ASGI message is the disconnect (uvicorn sends it when the client
    # closes its connection).
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _ms(seconds: float) -> str:
    return str(max(0, math.floor(seconds * 1000)))


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong API key"},
    413: {"model": ErrorResponse, "description": "Too many inputs, an input too long, or a body over the limit"},
    422: {"model": ErrorResponse, "description": "Invalid input (shape, types, pair vs single text, empty)"},
    424: {"model": ErrorResponse, "description": "Inference failed"},
    429: {"model": ErrorResponse, "description": "Overloaded: retry after Retry-After seconds"},
    503: {"model": ErrorResponse, "description": "Not ready (loading or shutting down)"},
}


def create_app(settings: ServeSettings, classifier: Any | None = None, api_key: str | None = None) -> FastAPI:
    """The ASGI app. ``classifier`` None: loaded from ``settings.run_dir`` at startup (lifespan)."""
    state = ServerState(settings.validate(), classifier, api_key)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = FastAPI(
        title="distiltune",
        version=__version__,
        summary="Text classification with a distiltune run (text-embeddings-inference's /predict shape).",
        lifespan=lifespan,
    )
    app.state.serving = state

    @app.post("/predict", response_model=PredictResponse, responses=ERROR_RESPONSES)
    async def predict(body: PredictRequest, request: Request) -> Response:
        """Classify texts or sentence pairs; see the request schema for the input forms."""
        if not state.healthy():
            raise RequestRejected("unhealthy", "The model is not ready (loading or shutting down); retry shortly.")
        if state.in_flight >= settings.max_concurrent_requests:
            state.metrics.rejected.labels(reason="overloaded").inc()
            raise RequestRejected(
                "overloaded",
                f"Model is overloaded: {state.in_flight} requests in flight (--max-concurrent-requests "
                f"{settings.max_concurrent_requests}); retry after {RETRY_AFTER_SECONDS} s.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        state.in_flight += 1
        try:
            return await state.predict(body, request)
        finally:
            state.in_flight -= 1

    @app.get(
        "/health",
        response_model=HealthResponse,
        responses={503: {"model": ErrorResponse, "description": "Not ready"}},
    )
    async def health() -> Any:
        """200 once the model is loaded and warmed up (no API key needed)."""
        if not state.healthy():
            raise RequestRejected("unhealthy", "The model is not ready (loading or shutting down).")
        return {"status": "ok"}

    @app.get("/info", response_model=InfoResponse, responses={401: ERROR_RESPONSES[401], 503: ERROR_RESPONSES[503]})
    async def info() -> Any:
        """The served run: model, method, labels, max length, backend, input kind and the server's limits."""
        if state.classifier is None:
            raise RequestRejected("unhealthy", "The model is not loaded yet.")
        return state.info()

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {}}, "description": "Prometheus metrics"},
            401: ERROR_RESPONSES[401],
        },
    )
    async def metrics() -> Response:
        """Prometheus text format."""
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)

    @app.exception_handler(RequestRejected)
    async def serving_error(_: Request, err: RequestRejected) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type")
        if content_type is None or "json" not in content_type:  # FastAPI reads JSON only when the request says so
            sent = f"not {content_type}" if content_type else "none was sent"
            message = f"The body must be JSON, sent with 'Content-Type: application/json' ({sent})."
        else:
            message = describe_validation_error(err)
        return JSONResponse({"error": message, "error_type": "invalid_input"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        # FastAPI answers 400 for a body it could not parse at all (e.g. nesting too deep): invalid input, 422.
        status = 422 if err.status_code == 400 else err.status_code
        kinds = {404: "not_found", 405: "method_not_allowed", 413: "validation", 422: "invalid_input"}
        return JSONResponse(
            {"error": str(err.detail), "error_type": kinds.get(status, "http_error")},
            status_code=status,
            headers=getattr(err, "headers", None),
        )

    # Added last = outermost: access log (request id, metrics), then the API key, then the body limit.
    app.add_middleware(BodyLimitMiddleware, limit=settings.payload_limit)
    app.add_middleware(ApiKeyMiddleware, api_key=api_key)
    app.add_middleware(AccessLogMiddleware, metrics=state.metrics)
    return app


INPUT_FORMS = "a string, a non-empty list of strings, or a list of [text] / [text, text_pair] lists"


def describe_validation_error(err: RequestValidationError) -> str:
    """One line naming the field and the problem. pydantic reports one error per member of a union (``inputs``):
    the one deepest into the list names the offending item best."""
    errors = list(err.errors())
    if not errors:
        return "Invalid request."
    first = errors[0]
    if first.get("type") == "json_invalid":
        return f"The body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})."
    location = [part for part in first.get("loc", ()) if part != "body"]
    if not location:
        return f"The body must be a JSON object with 'inputs': {INPUT_FORMS}."
    if location[0] != "inputs":
        return f"{location[0]}: {first.get('msg')}."
    if first.get("type") == "missing":
        return f"'inputs' is required: {INPUT_FORMS}."
    deepest = max(errors, key=lambda error: len(error.get("loc", ())))
    index = next((part for part in deepest.get("loc", ()) if isinstance(part, int)), None)
    if index is not None:
        return f"inputs[{index}] must be a string, [text] or [text, text_pair] ({deepest.get('msg')})."
    if deepest.get("type") == "too_short":
        return "inputs is an empty list: send at least one text."
    return f"inputs must be {INPUT_FORMS}."


async def _send_error(send: Send, status: int, error: str, error_type: str, headers: dict[str, str]) -> None:
    body = json.dumps({"error": error, "error_type": error_type}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(key.lower().encode(), value.encode()) for key, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """413 for a body over ``limit`` bytes, by its Content-Length or while it streams in."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"The request body is larger than the limit of {self.limit} bytes (--payload-limit)."
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _send_error(send, 413, message, "validation", {"connection": "close"})
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > self.limit:
                    raise StarletteHTTPException(413, message)
            return incoming

        await self.app(scope, limited_receive, send)


class ApiKeyMiddleware:
    """With a key, every route but /health needs ``Authorization: Bearer <key>`` (constant-time comparison)."""

    OPEN_PATHS = frozenset({"/health"})

    def __init__(self, app: ASGIApp, api_key: str | None) -> None:
        self.app = app
        self.expected = api_key.encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected is None or scope["type"] != "http" or scope["path"] in self.OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.expected):
            await self.app(scope, receive, send)
            return
        await _send_error(
            send,
            401,
            "Missing or wrong API key: send the header 'Authorization: Bearer <key>'.",
            "unauthorized",
            {"www-authenticate": "Bearer"},
        )


class AccessLogMiddleware:
    """A request id (the client's ``x-request-id`` when sane, else a new one) on every response, one access-log
    line per request on the ``distiltune`` logger (never its headers), and the request metrics."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            self.metrics.observe_request(scope["path"], status, seconds)
            client = scope.get("client") or ("-", 0)
            logger.info(
                "request_id=%s client=%s method=%s path=%s status=%d duration_ms=%.1f",
                request_id,
                client[0],
                scope["method"],
                scope["path"],
                status,
                seconds * 1000,
            )


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

    settings.validate()
    api_key = read_api_key(settings)
    if settings.host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        logger.warning("Serving on %s without an API key: anyone who reaches this port can use it.", settings.host)
    options = uvicorn_options(settings)
    if settings.workers > 1:
        os.environ[SETTINGS_ENV] = settings.to_json()
        uvicorn.run(
            "distiltune.serving.server:app_from_environment", factory=True, workers=settings.workers, **options
        )
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
