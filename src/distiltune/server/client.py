"""``distiltune.Client``: ``Classifier.predict`` over HTTP, against ``distiltune serve``.

client = distiltune.Client("http://localhost:8080")
client.predict(["great film"], top_k=2)
# [{"label": "pos", "score": 0.93, "scores": [{"label": "pos", "score": 0.93}, {"label": "neg", ...}]}]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx

from distiltune.errors import DataError, ServingError

#: Statuses worth a retry after the server's Retry-After: overloaded, not ready yet.
RETRYABLE = frozenset({429, 503})
#: A request sent on a connection that closed before any answer came: sent again, up to ``retries`` times.
CONNECTION_LOST = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class Client:
    """A client of one ``distiltune serve`` URL, with the same ``predict`` as :class:`distiltune.Classifier`.

    ``api_key``: sent as ``Authorization: Bearer <key>``. ``retries``: how many times a request answered 429 or
    503 is sent again, after the server's ``Retry-After`` (at most ``max_retry_wait`` seconds each), and how many
    times one whose connection closed before the answer is sent again at once. ``transport``: an httpx transport
    to send through instead of the network (a proxy's, or ``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8080",
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        max_retry_wait: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)
        self.url = url
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self._info: dict[str, Any] | None = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def health(self) -> bool:
        """Whether the server answers and its model is loaded and warmed up."""
        try:
            return self._http.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def info(self) -> dict[str, Any]:
        """The server's ``/info``: model, method, labels, max length, backend, input kind and limits."""
        if self._info is None:
            self._info = self._request("GET", "/info").json()
        return self._info

    def predict(
        self,
        texts: str | Sequence[str],
        pairs: str | Sequence[str] | None = None,
        top_k: int = 1,
        batch_size: int | None = None,
    ) -> list[dict[str, Any]]:
        """For each input: ``{"label": best, "score": p, "scores": [{"label", "score"}, ... top_k]}``, as
        ``Classifier.predict`` returns it (a multi-label model: also ``labels``, every selected label, and
        ``selected`` per score). ``batch_size``: inputs per HTTP request (default: the server's
        ``max_client_batch_size``); longer lists go in several requests. Inputs longer than the model's max
        length are truncated, as ``Classifier.predict`` does."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        pairs = [pairs] if isinstance(pairs, str) else (list(pairs) if pairs is not None else None)
        if pairs is not None and len(pairs) != len(texts):
            raise DataError(f"Got {len(texts)} texts but {len(pairs)} pairs.", "Pass one text_pair per text.")
        if top_k < 1:
            raise DataError(f"top_k must be >= 1, got {top_k}.")
        chunk = batch_size or int(self.info().get("max_client_batch_size", 32))
        multi_label = bool(self.info().get("multi_label"))
        # [text] and [text, text_pair] lists: one unambiguous form for single-text and pair models alike.
        inputs = [[text, pairs[i]] if pairs is not None else [text] for i, text in enumerate(texts)]
        results: list[dict[str, Any]] = []
        for start in range(0, len(inputs), chunk):
            body: dict[str, Any] = {"inputs": inputs[start : start + chunk], "truncate": True}
            if not multi_label:  # a multi-label answer needs every label: any number of them may be selected
                body["top_k"] = top_k
            for ranked in self._request("POST", "/predict", json=body).json():
                results.append(_multi_label_result(ranked, top_k) if multi_label else _result(ranked))
        return results

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except CONNECTION_LOST as err:
                # A pooled connection the server (or a proxy) closed as the request went out: nothing was
                # answered, and /predict changes nothing, so sending it again is safe.
                if attempt == self.retries:
                    raise ServingError(f"{method} {self.url}{path}: the connection was lost ({err!r}).") from None
                continue
            except httpx.HTTPError as err:
                raise ServingError(
                    f"Cannot reach {self.url}{path}: {err}.", "Is `distiltune serve` running at that URL?"
                ) from None
            if response.status_code not in RETRYABLE or attempt == self.retries:
                break
            time.sleep(min(self.max_retry_wait, _retry_after(response)))
        if response.status_code >= 400:
            raise _error(response, f"{method} {self.url}{path}")
        return response


def _result(ranked: list[dict[str, Any]]) -> dict[str, Any]:
    scores = [{"label": entry["label"], "score": round(float(entry["score"]), 6)} for entry in ranked]
    return {"label": scores[0]["label"], "score": scores[0]["score"], "scores": scores}


def _multi_label_result(ranked: list[dict[str, Any]], top_k: int) -> dict[str, Any]:
    """``Classifier.predict``'s multi-label answer from the server's ranked, marked labels: every selected label,
    and the scores of the selected ones and the next highest up to ``top_k``."""
    scores = [
        {"label": entry["label"], "score": round(float(entry["score"]), 6), "selected": bool(entry.get("selected"))}
        for entry in ranked
    ]
    chosen = [entry for entry in scores if entry["selected"]]
    return {
        "labels": [entry["label"] for entry in chosen],
        "label": chosen[0]["label"] if chosen else None,
        "score": chosen[0]["score"] if chosen else None,
        "scores": scores[: max(top_k, len(chosen), 1)],
    }


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def _error(response: httpx.Response, what: str) -> Exception:
    try:
        message = str(response.json().get("error", response.text))
    except ValueError:
        message = response.text[:200]
    text = f"{what} answered {response.status_code}: {message}"
    if response.status_code in (413, 422):
        return DataError(text)
    return ServingError(text, status_code=response.status_code)
