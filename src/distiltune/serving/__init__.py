"""Serving what training wrote: :class:`Classifier` (PyTorch, ONNX or the method's own predictor), the batched
inference path every prediction goes through, evaluation of a run on new data, and the HTTP server
(``distiltune serve``, :mod:`.server`) with its :class:`~distiltune.serving.client.Client`. Never imports training.

The names below load on first use: ``distiltune.Client`` talks to a server over HTTP and must not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distiltune.serving.classifier import Classifier, load
    from distiltune.serving.client import Client
    from distiltune.serving.evaluation import evaluate

_LAZY = {
    "Classifier": "distiltune.serving.classifier",
    "load": "distiltune.serving.classifier",
    "evaluate": "distiltune.serving.evaluation",
    "Client": "distiltune.serving.client",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'distiltune.serving' has no attribute {name!r}")


__all__ = ["Classifier", "Client", "evaluate", "load"]
