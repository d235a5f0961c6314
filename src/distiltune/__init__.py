"""distiltune: fine-tune, compare, export and serve Hugging Face encoders for text classification and NLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from distiltune.comparison import Comparison, compare
    from distiltune.config import Config, load_config
    from distiltune.evaluation import evaluate
    from distiltune.predict import Classifier, load
    from distiltune.report import render_report
    from distiltune.serving.client import Client
    from distiltune.training import Run, train

_LAZY = {
    "Config": "distiltune.config",
    "load_config": "distiltune.config",
    "train": "distiltune.training",
    "Run": "distiltune.training",
    "evaluate": "distiltune.evaluation",
    "load": "distiltune.predict",
    "Classifier": "distiltune.predict",
    "compare": "distiltune.comparison",
    "Comparison": "distiltune.comparison",
    "render_report": "distiltune.report",
    "Client": "distiltune.serving.client",
}


def __getattr__(name: str) -> Any:
    # Importing torch/transformers takes seconds: keep `import distiltune` (and `distiltune --help`) fast.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'distiltune' has no attribute {name!r}")


__all__ = [
    "Classifier",
    "Client",
    "Comparison",
    "Config",
    "Run",
    "__version__",
    "compare",
    "evaluate",
    "load",
    "load_config",
    "render_report",
    "train",
]
