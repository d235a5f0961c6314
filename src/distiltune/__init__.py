"""distiltune: fine-tune, compare, export and serve Hugging Face encoders for text classification and NLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from distiltune.version import __version__

if TYPE_CHECKING:
    from distiltune.comparison import Comparison, compare, render_report
    from distiltune.config import Config, load_config
    from distiltune.inference import Classifier, evaluate, load
    from distiltune.server.client import Client
    from distiltune.training import Run, train
    from distiltune.tuning import TuneResult, tune

_LAZY = {
    "Config": "distiltune.config",
    "load_config": "distiltune.config",
    "train": "distiltune.training",
    "Run": "distiltune.training",
    "evaluate": "distiltune.inference",
    "load": "distiltune.inference",
    "Classifier": "distiltune.inference",
    "compare": "distiltune.comparison",
    "Comparison": "distiltune.comparison",
    "render_report": "distiltune.comparison",
    "Client": "distiltune.server.client",
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
