"""distiltune: fine-tune, compare, export and serve Hugging Face encoders for text classification and NLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from distiltune.comparison import Comparison, compare, render_report
    from distiltune.config import Config, load_config
    from distiltune.serving import Classifier, evaluate, load
    from distiltune.serving.client import Client
    from distiltune.training import Run, train
    from distiltune.tuning import TuneResult, tune

_LAZY = {
    "Config": "distiltune.config",
    "load_config": "distiltune.config",
    "train": "distiltune.training",
    "Run": "distiltune.training",
    "evaluate": "distiltune.serving",
    "load": "distiltune.serving",
    "Classifier": "distiltune.serving",
    "compare": "distiltune.comparison",
    "Comparison": "distiltune.comparison",
    "render_report": "distiltune.comparison",
    "Client": "distiltune.serving.client",
    "tune": "distiltune.tuning",
    "TuneResult": "distiltune.tuning",
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
    "TuneResult",
    "__version__",
    "compare",
    "evaluate",
    "load",
    "load_config",
    "render_report",
    "train",
    "tune",
]
