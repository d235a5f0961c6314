"""``distiltune serve``: an HTTP server for a trained run (FastAPI + uvicorn), with TEI's ``/predict`` shape.

Routes: ``POST /predict``, ``GET /health``, ``GET /info``, ``GET /metrics`` (Prometheus), ``GET /docs`` and
``/openapi.json``. Requests are validated and their inputs counted in tokens on the event loop's side, then wait
in a :class:`~distiltune.server.batcher.DynamicBatcher`, which merges concurrent requests into one call of the
classifier's own ``predict_proba`` / ``predict_logits`` (so whatever a run applies at prediction, the server
applies too) in a worker thread. Limits answer 4xx JSON errors (see :mod:`distiltune.server.protocol`); past
``max_concurrent_requests`` a request gets 429 with ``Retry-After`` instead of a place in an unbounded queue.
With an API key every route but ``/health`` needs ``Authorization: Bearer <key>`` (compared in constant time).
SIGTERM: uvicorn stops accepting connections, in-flight requests finish within ``graceful_timeout`` seconds, and
the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from distiltune import runs
from distiltune.config import Config
from distiltune.errors import ConfigError
from distiltune.inference.classifier import load
from distiltune.server.batcher import BatchReport, DynamicBatcher, QueuedInput
from distiltune.server.metrics import ServingMetrics
from distiltune.server.middleware import AccessLogMiddleware, ApiKeyMiddleware, BodyLimitMiddleware
from distiltune.server.protocol import (
    ErrorResponse,
    HealthResponse,
    InfoResponse,
    PredictRequest,
    PredictResponse,
    RequestRejected,
    parse_inputs,
)
from distiltune.server.settings import ServeSettings
from distiltune.version import __version__

logger = logging.getLogger("distiltune")

#: "Client closed request": logged for a request whose client went away before its answer.
CLIENT_GONE = 499
RETRY_AFTER_SECONDS = 1


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
        # The task orders the labels: the decided one first (a tuned decision threshold may pick a label other than
        # the highest score), like Classifier.predict's "label".
        order = classifier.task.ranked_labels(row, classifier.calibration, raw)[: top_k or len(names)]
        # A multi-label run marks every label its decision selects (each score against its own threshold).
        selected = classifier.task.selected(row, classifier.calibration, raw)
        # A TF-IDF run gives -inf to a label absent from its training split: JSON has no infinity.
        largest = float(np.finfo(np.float64).max)
        return [
            {
                "label": names[i],
                "score": max(-largest, min(largest, float(row[i]))),
                **({"selected": selected[i]} if selected is not None else {}),
            }
            for i in order
        ]

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
            **classifier.task.info(classifier.calibration),  # temperature, decision threshold
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


def model_dtype(classifier: Any) -> str:
    """What the model computes in, as TEI's /info names it: the backend's account (torch: the precision the
    classifier resolved, which ``auto`` measures at load time, so it can differ between machines; ONNX: the export's
    weights, int8 when quantized)."""
    return str(classifier.dtype)


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
    state = ServerState(settings, classifier, api_key)

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
