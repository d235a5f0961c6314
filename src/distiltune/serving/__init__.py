"""Serving what training wrote: :class:`Classifier` (PyTorch, ONNX or the method's own predictor), the batched
inference path every prediction goes through, and evaluation of a run on new data. Never imports training."""

from __future__ import annotations

from distiltune.serving.classifier import Classifier, load
from distiltune.serving.evaluation import evaluate

__all__ = ["Classifier", "evaluate", "load"]
