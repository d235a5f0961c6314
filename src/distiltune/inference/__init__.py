"""The inference core: what turns a trained run into predictions, below training, export and the server.

:class:`Classifier` loads a run directory and predicts through one of the inference backends (:mod:`.backends`:
PyTorch, ONNX Runtime, or a method's own predictor); :mod:`.batched` is the one batched path by which every caller
turns texts into logits; :mod:`.scoring` scores logits against gold labels and :mod:`.evaluation` evaluates a run on
new data. Never imports training, export or the server.

The names below load on first use (torch takes seconds to import).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distiltune.inference.classifier import Classifier, load
    from distiltune.inference.evaluation import evaluate

_LAZY = {
    "Classifier": "distiltune.inference.classifier",
    "load": "distiltune.inference.classifier",
    "evaluate": "distiltune.inference.evaluation",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'distiltune.inference' has no attribute {name!r}")


__all__ = ["Classifier", "evaluate", "load"]
