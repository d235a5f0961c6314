"""Training: ``train(config) -> Run`` and everything a run needs around the Hugging Face Trainer.

``pipeline`` (the phases of a run), ``trainer`` (the one module that overrides private Trainer members),
``checkpoints`` / ``resume`` / ``interrupts`` (crash-safe runs), ``callbacks`` (history), ``speed`` (the speed plan),
``memory``, ``reproducibility``, ``classical`` (methods outside the Trainer) and ``run`` (what every run writes).
"""

from __future__ import annotations

from distiltune.training.pipeline import train
from distiltune.training.run import Run

__all__ = ["Run", "train"]
