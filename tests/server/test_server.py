"""distiltune serve: predictions over HTTP equal Classifier.predict, dynamic batching, limits, 429, dropped
clients, API key, SIGTERM drain (a real `distiltune serve` process) and distiltune.Client.

Servers run in a thread on a free port (uvicorn), over tiny runs trained once per session (conftest.py). Where a
test needs a request to be in flight, the classifier is wrapped in a gate that holds its model calls until released.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import distiltune
from distiltune.errors import ConfigError, DataError, ServingError
from distiltune.server import ServeSettings

TEXTS = ["the movie was great and fun", "boring awful plot", "the acting", "love it", "hate this very dull film"]
PREMISES = ["the man runs", "a woman sings", "the cat eats"]
HYPOTHESES = ["a man runs", "a woman walks", "a cat eats"]


class GatedClassifier:
    """The real classifier, whose model calls wait while ``gate`` is closed and are recorded in ``calls``."""

    def __init__(self, classifier: Any) -> None:
        self._inner = classifier
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.calls: list[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _hold(self, texts: list[str]) -> None:
        self.calls.append(list(texts))
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"

    def predict_proba(self, texts: Any, pairs: Any = None, **options: Any) -> Any:
        self._hold(texts)
        return self._inner.predict_proba(texts, pairs, **options)

    def predict_logits(self, texts: Any, pairs: Any = None, **options: Any) -> Any:
        self._hold(texts)
        return self._inner.predict_logits(texts, pairs, **options)


def metric(url: str, name: str, headers: dict[str, str] | None = None) -> float:
    """A sample's value in /metrics (0 when absent)."""
    text = httpx.get(f"{url}/metrics", headers=headers).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def wait_until(condition: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def as_scores(ranked: list[dict[str, Any]]) -> dict[str, float]:
    return {entry["label"]: entry["score"] for entry in ranked}


def assert_same_scores(served: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [entry["label"] for entry in served] == [entry["label"] for entry in expected]
    assert as_scores(served) == pytest.approx(as_scores(expected), abs=1e-5)


def test_predictions_over_http_equal_classifier_predict(text_classifier: Any, live_server: Any) -> None:
    expected = text_classifier.predict(TEXTS, top_k=2)
    with live_server(text_classifier) as url:
        batch = httpx.post(f"{url}/predict", json={"inputs": TEXTS})
        single = httpx.post(f"{url}/predict", json={"inputs": TEXTS[0]})
        top_1 = httpx.post(f"{url}/predict", json={"inputs": [[text] for text in TEXTS], "top_k": 1})
    assert batch.status_code == 200, batch.text
    assert len(batch.json()) == len(TEXTS)
    for ranked, want in zip(batch.json(), expected, strict=True):
        assert_same_scores(ranked, want["scores"])  # every label, highest first
    assert single.status_code == 200
    assert_same_scores(single.json(), expected[0]["scores"])  # a string in: a flat list out, as TEI answers
    assert [len(ranked) for ranked in top_1.json()] == [1] * len(TEXTS)
    assert [ranked[0]["label"] for ranked in top_1.json()] == [want["label"] for want in expected]
    for name in ("x-total-time", "x-tokenization-time", "x-queue-time", "x-inference-time", "x-request-id"):
        assert name in batch.headers


def test_pair_predictions_and_the_input_kind_is_checked(pair_classifier: Any, live_server: Any) -> None:
    expected = pair_classifier.predict(PREMISES, HYPOTHESES, top_k=3)
    pairs = [list(pair) for pair in zip(PREMISES, HYPOTHESES, strict=True)]
    with live_server(pair_classifier) as url:
        batch = httpx.post(f"{url}/predict", json={"inputs": pairs})
        one_pair = httpx.post(f"{url}/predict", json={"inputs": pairs[0]})  # TEI: [a, b] is one pair
        single_text = httpx.post(f"{url}/predict", json={"inputs": [["the man runs"]]})
        bare_string = httpx.post(f"{url}/predict", json={"inputs": "the man runs"})
    assert batch.status_code == 200, batch.text
    for ranked, want in zip(batch.json(), expected, strict=True):
        assert_same_scores(ranked, want["scores"])
    assert_same_scores(one_pair.json(), expected[0]["scores"])
    assert single_text.status_code == 422 and "sentence pairs" in single_text.json()["error"]
    assert bare_string.status_code == 422 and bare_string.json()["error_type"] == "invalid_input"


def test_a_tfidf_run_is_served_like_an_encoder(tiny_model: str, tmp_path: Path, live_server: Any) -> None:
    from serving_fixtures import overrides

    run = distiltune.train(None, {**overrides(tiny_model, tmp_path), "method.name": "tfidf", "method.ngram_max": 1})
    classifier = distiltune.load(run.dir)
    texts = [*TEXTS, "great fun " * 20]  # 40 words: past the run's max_length 16, which TF-IDF does not have
    with live_server(classifier) as url:
        probabilities = httpx.post(f"{url}/predict", json={"inputs": texts, "truncate": False})
        logits = httpx.post(f"{url}/predict", json={"inputs": TEXTS[:1], "raw_scores": True}).json()[0]
    assert probabilities.status_code == 200, probabilities.text  # no tokenizer: no token limit either
    for ranked, want in zip(probabilities.json(), classifier.predict(texts, top_k=2), strict=True):
        assert_same_scores(ranked, want["scores"])
    expected_logits = classifier.predict_logits(TEXTS[:1])[0].tolist()
    assert as_scores(logits) == dict(zip(classifier.label_names, expected_logits, strict=True))


def test_raw_scores_and_left_truncation_go_through_the_classifier(text_classifier: Any, live_server: Any) -> None:
    long_text = "great wonderful fun " * 3 + "the movie was really boring and awful " * 3  # > 16 tokens
    with live_server(text_classifier) as url:
        raw = httpx.post(f"{url}/predict", json={"inputs": [long_text], "raw_scores": True}).json()[0]
        left = httpx.post(
            f"{url}/predict", json={"inputs": [long_text], "raw_scores": True, "truncation_direction": "left"}
        ).json()[0]
    names = text_classifier.label_names
    right_logits = dict(zip(names, text_classifier.predict_logits([long_text])[0].tolist(), strict=True))
    left_end = text_classifier.predict_logits([long_text], truncation_side="left")[0].tolist()
    left_logits = dict(zip(names, left_end, strict=True))
    # One input alone in its batch: the same computation as the direct call, so the same floats.
    assert as_scores(raw) == right_logits
    assert as_scores(left) == left_logits
    assert left_logits != right_logits  # the two ends of the text differ


def test_concurrent_requests_are_batched_and_each_caller_gets_its_own_answer(
    text_classifier: Any, live_server: Any
) -> None:
    gated = GatedClassifier(text_classifier)
    texts = [f"{word} movie" for word in ("great", "awful", "fun", "boring", "love", "dull")]
    predictions = text_classifier.predict(texts, top_k=2)
    expected = {text: result["scores"] for text, result in zip(texts, predictions, strict=True)}
    with live_server(gated) as url, ThreadPoolExecutor(8) as pool:
        gated.calls.clear()
        gated.gate.clear()
        gated.entered.clear()
        first = pool.submit(httpx.post, f"{url}/predict", json={"inputs": "the plot"}, timeout=30)
        assert gated.entered.wait(10)  # the first request's batch is running, and held
        assert httpx.get(f"{url}/health").status_code == 200  # inference runs off the event loop
        others = {
            text: pool.submit(httpx.post, f"{url}/predict", json={"inputs": [text]}, timeout=30) for text in texts
        }
        wait_until(lambda: metric(url, "distiltune_queue_depth") == len(texts))
        gated.gate.set()
        answers = {text: future.result().json() for text, future in others.items()}
        assert first.result().status_code == 200
        batches = metric(url, "distiltune_batch_size_count")
        singles = metric(url, 'distiltune_batch_size_bucket{le="1.0"}')
    assert sorted(gated.calls[1]) == sorted(texts)  # the six waiting requests made one model call
    assert batches - singles >= 1
    for text, answer in answers.items():
        assert_same_scores(answer[0], expected[text])


LIMITS = {"max_client_batch_size": 4, "max_input_chars": 200, "payload_limit": 2000}
TOO_MANY_TOKENS = "great " * 30  # 180 characters, 32 tokens with [CLS] and [SEP]: over max_length 16


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"inputs": ["a"] * 5}, 413, "batch size 5 > maximum allowed batch size 4"),
        ({"inputs": "x" * 201}, 413, "201 characters, more than --max-input-chars 200"),
        ({"inputs": [TOO_MANY_TOKENS], "truncate": False}, 413, "inputs[0] has 32 tokens"),
        ({"inputs": [["great", "film"]]}, 422, "inputs[0] is a pair"),
        ({"inputs": []}, 422, "inputs"),
        ({"inputs": ["fine", ""]}, 422, "inputs[1] is empty"),
        ({"inputs": 5}, 422, "inputs"),
        ({"inputs": ["a", 3]}, 422, "inputs[1]"),
        ({"inputs": [["a", "b", "c"]]}, 422, "inputs[0]"),
        ({"texts": ["a"]}, 422, "'inputs' is required"),
        ({"inputs": "a", "top_k": 0}, 422, "top_k"),
        ({"inputs": "a", "top_k": "2"}, 422, "top_k"),
        ({"inputs": "a", "truncate": "yes"}, 422, "truncate"),
        ({"inputs": "a", "truncation_direction": "middle"}, 422, "truncation_direction"),
        ("not json", 422, "not valid JSON"),
        ([1, 2], 422, "JSON object"),
        ({"inputs": "a", "ignored": "x" * 3000}, 413, "larger than the limit of 2000 bytes"),
    ],
)
def test_limits_and_bad_input_answer_their_4xx(
    text_classifier: Any, body: Any, status: int, message: str, live_server: Any
) -> None:
    with live_server(text_classifier, **LIMITS) as url:
        if isinstance(body, str):
            response = httpx.post(f"{url}/predict", content=body, headers={"content-type": "application/json"})
        else:
            response = httpx.post(f"{url}/predict", json=body)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error", "error_type"} and message in response.json()["error"]


def test_streamed_oversized_body_unknown_routes_and_content_type(text_classifier: Any, live_server: Any) -> None:
    chunks = [b'{"inputs": ["', b"x" * 1500, b"x" * 1500, b'"]}']
    with live_server(text_classifier, **LIMITS) as url:
        streamed = httpx.post(f"{url}/predict", content=iter(chunks))  # chunked: no Content-Length to go by
        missing = httpx.get(f"{url}/nowhere")
        wrong_method = httpx.get(f"{url}/predict")
        truncated = httpx.post(f"{url}/predict", json={"inputs": [TOO_MANY_TOKENS], "truncate": True})
        as_text = httpx.post(f"{url}/predict", content='{"inputs": "a"}', headers={"content-type": "text/plain"})
        untyped = httpx.post(f"{url}/predict", content='{"inputs": "a"}')
    assert streamed.status_code == 413 and "larger than the limit" in streamed.json()["error"]
    assert missing.status_code == 404 and missing.json()["error_type"] == "not_found"
    assert wrong_method.status_code == 405 and wrong_method.json()["error_type"] == "method_not_allowed"
    assert truncated.status_code == 200
    for answer in (as_text, untyped):
        assert answer.status_code == 422 and "Content-Type: application/json" in answer.json()["error"]


def test_a_full_server_answers_429_with_retry_after(text_classifier: Any, live_server: Any) -> None:
    gated = GatedClassifier(text_classifier)
    with live_server(gated, max_concurrent_requests=1) as url, ThreadPoolExecutor(1) as pool:
        gated.gate.clear()
        gated.entered.clear()
        held = pool.submit(httpx.post, f"{url}/predict", json={"inputs": "great"}, timeout=30)
        assert gated.entered.wait(10)
        refused = httpx.post(f"{url}/predict", json={"inputs": "awful"})
        gated.gate.set()
        assert held.result().status_code == 200
        after = httpx.post(f"{url}/predict", json={"inputs": "awful"})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.json()["error_type"] == "overloaded"
    assert after.status_code == 200


def test_a_client_that_went_away_is_dropped_from_the_queue(text_classifier: Any, live_server: Any) -> None:
    gated = GatedClassifier(text_classifier)
    with live_server(gated) as url, ThreadPoolExecutor(1) as pool:
        gated.gate.clear()
        gated.entered.clear()
        held = pool.submit(httpx.post, f"{url}/predict", json={"inputs": "great"}, timeout=30)
        assert gated.entered.wait(10)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/predict", json={"inputs": "impatient"}, timeout=0.5)
        wait_until(lambda: metric(url, "distiltune_requests_in_flight") == 1)  # the server noticed
        gated.gate.set()
        assert held.result().status_code == 200
        assert httpx.post(f"{url}/predict", json={"inputs": "later"}).status_code == 200
        dropped = metric(url, "distiltune_dropped_inputs_total")
    assert dropped == 1
    assert not any("impatient" in call for call in gated.calls)


def test_api_key_guards_every_route_but_health_and_is_never_logged(text_classifier: Any, live_server: Any) -> None:
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    log = logging.getLogger("distiltune")
    log.addHandler(handler)
    previous_level = log.level
    log.setLevel(logging.INFO)
    try:
        with live_server(text_classifier, api_key="s3cret-key") as url:
            body = {"inputs": "great"}
            no_key = httpx.post(f"{url}/predict", json=body)
            wrong = httpx.post(f"{url}/predict", json=body, headers={"Authorization": "Bearer s3cret-kez"})
            right = httpx.post(f"{url}/predict", json=body, headers={"Authorization": "Bearer s3cret-key"})
            health = httpx.get(f"{url}/health")
            guarded = {path: httpx.get(f"{url}{path}").status_code for path in ("/info", "/metrics", "/docs")}
    finally:
        log.removeHandler(handler)
        log.setLevel(previous_level)
    assert no_key.status_code == 401 and no_key.json()["error_type"] == "unauthorized"
    assert no_key.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert right.status_code == 200 and health.status_code == 200
    assert guarded == {"/info": 401, "/metrics": 401, "/docs": 401}
    assert any("path=/predict status=401" in line for line in records)  # the access log saw them...
    assert not any("s3cret" in line for line in records)  # ...but never the key


def test_info_metrics_and_docs(text_classifier: Any, live_server: Any) -> None:
    with live_server(text_classifier) as url:
        httpx.post(f"{url}/predict", json={"inputs": TEXTS[:3]})
        info = httpx.get(f"{url}/info").json()
        metrics = httpx.get(f"{url}/metrics").text
        docs = httpx.get(f"{url}/docs")
        schema = httpx.get(f"{url}/openapi.json").json()
    assert info["labels"] == text_classifier.label_names and info["input"] == "text"
    assert info["max_input_length"] == 16 and info["backend"] == "torch" and info["method"] == "full"
    assert info["version"] == distiltune.__version__
    assert info["model_dtype"] == {"fp32": "float32", "bf16": "bfloat16"}[text_classifier.precision]
    assert 'distiltune_requests_total{route="/predict",status="200"} 1.0' in metrics
    assert "distiltune_texts_total 3.0" in metrics and "distiltune_request_duration_seconds_bucket" in metrics
    assert docs.status_code == 200 and "/predict" in schema["paths"]


def test_client_round_trip(text_classifier: Any, pair_classifier: Any, live_server: Any) -> None:
    with live_server(text_classifier, max_client_batch_size=2) as url, distiltune.Client(url) as client:
        served = client.predict(TEXTS, top_k=2)  # 5 inputs in requests of 2
        one = client.predict("great fun")
        assert client.health() and client.info()["labels"] == text_classifier.label_names
        with pytest.raises(DataError, match="is a pair"):
            client.predict(["great"], pairs=["film"])
    expected = text_classifier.predict(TEXTS, top_k=2)
    assert [result["label"] for result in served] == [result["label"] for result in expected]
    for result, want in zip(served, expected, strict=True):
        assert result["score"] == pytest.approx(want["score"], abs=1e-5) and len(result["scores"]) == 2
    assert len(one) == 1 and set(one[0]) == {"label", "score", "scores"} and len(one[0]["scores"]) == 1

    with live_server(pair_classifier, api_key="k") as url:
        with distiltune.Client(url, api_key="k") as client:
            pairs = client.predict(PREMISES, HYPOTHESES, top_k=2)
        with distiltune.Client(url, api_key="wrong") as client, pytest.raises(ServingError) as refused:
            client.predict("the man runs", "a man runs")
    expected = pair_classifier.predict(PREMISES, HYPOTHESES, top_k=2)
    assert [result["label"] for result in pairs] == [result["label"] for result in expected]
    assert refused.value.status_code == 401


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sigterm_finishes_in_flight_requests_then_exits_0(text_run: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    key = {"Authorization": "Bearer sigterm-key"}
    env = {**os.environ, "DT_TEST_KEY": "sigterm-key", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "distiltune", "serve", str(text_run), "--port", str(port)]
    # A long batching wait keeps the requests in flight when the signal comes.
    command += ["--api-key-env", "DT_TEST_KEY", "--max-wait-ms", "2500", "--threads", "1"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _healthy(url) or server.poll() is not None, timeout=120)
        assert server.poll() is None, server.communicate()[1]
        with ThreadPoolExecutor(3) as pool:
            requests = [
                pool.submit(httpx.post, f"{url}/predict", json={"inputs": [text]}, headers=key, timeout=30)
                for text in TEXTS[:3]
            ]
            wait_until(lambda: metric(url, "distiltune_queue_depth", key) == 3)
            server.send_signal(signal.SIGTERM)
            answers = [request.result() for request in requests]
        _, stderr = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert all(len(answer.json()) == 1 for answer in answers)
    assert server.returncode == 0, stderr
    assert "path=/predict status=200" in stderr and "request_id=" in stderr
    assert "sigterm-key" not in stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_settings_travel_to_worker_processes_without_the_key(tmp_path: Path) -> None:
    settings = ServeSettings(run_dir="runs/x", workers=2, api_key_env="SOME_VAR", max_wait_ms=7.5)
    assert ServeSettings.from_json(settings.to_json()) == settings
    assert "SOME_VAR" in settings.to_json() and json.loads(settings.to_json())["api_key_file"] is None


def _send_health(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /health HTTP/1.1\r\nhost: test\r\n\r\n")
    return sock.recv(4096)


def _closed_by_server(sock: socket.socket, wait: float) -> bool:
    """Whether the server closes this idle connection within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if sock.recv(4096) == b"":  # the rest of the last answer may still be on its way
                return True
    except TimeoutError:
        pass
    return False


def test_idle_connections_stay_open_for_keep_alive_seconds(text_classifier: Any, live_server: Any) -> None:
    for keep_alive, closed in ((1, True), (4, False)):
        with live_server(text_classifier, keep_alive=keep_alive) as url:
            port = int(url.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                assert _send_health(sock).startswith(b"HTTP/1.1 200")
                assert _closed_by_server(sock, wait=2.5) is closed, keep_alive


def test_the_default_keep_alive_outlasts_what_clients_keep_idle() -> None:
    # The client side must close an idle connection first, or a request can go out as the server closes it.
    assert ServeSettings(run_dir="x").keep_alive > httpx.Limits().keepalive_expiry
    assert ServeSettings(run_dir="x").keep_alive > 60  # AWS ALB's idle timeout
    with pytest.raises(ConfigError, match="--keep-alive must be >= 1, got 0"):
        ServeSettings(run_dir="x", keep_alive=0)


def test_the_client_sends_again_a_request_whose_connection_was_lost() -> None:
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/info":
            return httpx.Response(200, json={"max_client_batch_size": 32})
        if len(calls) == 2:  # the first /predict: the connection closes before any answer
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return httpx.Response(200, json=[[{"label": "pos", "score": 0.9}, {"label": "neg", "score": 0.1}]])

    with distiltune.Client("http://127.0.0.1:1", transport=httpx.MockTransport(answer)) as client:
        assert client.predict("great")[0]["label"] == "pos"
        assert calls == ["/info", "/predict", "/predict"]

    def always_lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    with distiltune.Client("http://127.0.0.1:1", retries=2, transport=httpx.MockTransport(always_lost)) as client:
        with pytest.raises(ServingError, match="connection was lost"):
            client.health() or client.info()


def test_serve_flags_reach_the_server_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import distiltune.server as server_module
    from distiltune.cli import app

    started: list[ServeSettings] = []
    monkeypatch.setattr(server_module, "load_classifier", lambda settings: object())
    monkeypatch.setattr(server_module, "serve", lambda settings, classifier=None: started.append(settings))
    flags = ["--keep-alive", "9", "--graceful-timeout", "4", "--max-wait-ms", "3.5", "--max-batch-size", "8"]
    result = CliRunner().invoke(app, ["serve", str(tmp_path), *flags])
    assert result.exit_code == 0, result.output
    (settings,) = started
    assert (settings.keep_alive, settings.graceful_timeout, settings.max_wait_ms, settings.max_batch_size) == (
        9,
        4.0,
        3.5,
        8,
    )


def test_info_names_what_the_model_computes_in(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from distiltune.inference.backends import export_dtype, precision_dtype
    from distiltune.server import model_dtype

    assert precision_dtype("bf16") == "bfloat16" and precision_dtype("fp32") == "float32"
    assert export_dtype(tmp_path) == "float32"  # no export report: plain weights
    (tmp_path / "export.json").write_text(json.dumps({"quantize": "int8"}))
    assert export_dtype(tmp_path) == "int8"
    assert model_dtype(SimpleNamespace(dtype="int8")) == "int8"  # the server reports what the backend said
