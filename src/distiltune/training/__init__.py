"""Training: ``train(config) -> Run`` and everything a run needs around the Hugging Face Trainer.

``pipeline`` (the phases of a run), ``trainer`` (the one module that overrides private Trainer members),
``checkpoints`` / ``resume`` / ``interrupts`` (crash-safe runs), ``callbacks`` (history), ``speed`` (the speed plan),
``memory``, ``reproducibility``, ``distributed`` (several processes, one run), ``classical`` (methods outside the
Trainer) and ``run`` (what every run writes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distiltune.training.pipeline import train
    from distiltune.training.run import Run

_LAZY = {"train": "distiltune.training.pipeline", "Run": "distiltune.training.run"}


def __getattr__(name: str) -> Any:
    # Loaded on first use: `distiltune train --nproc N` reads training.distributed and re-execs a launcher, and
    # should not wait seconds for torch and transformers to load first.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'distiltune.training' has no attribute {name!r}")


__all__ = ["Run", "train"]
