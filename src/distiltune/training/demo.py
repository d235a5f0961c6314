"""The offline demo (``distiltune demo``): its settings and the run, in one place.

``cli.demo`` prints what :func:`run_demo` returns; ``benchmarks/demo.py`` times the same call, so the figures it
records are those of the command users run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distiltune.training.pipeline import train
from distiltune.training.run import Run

#: New sentences the demo classifies after training.
DEMO_SENTENCES = [
    "An absolute masterpiece: the acting, the score and the story all work beautifully.",
    "A dull, lifeless film. I kept checking my watch and regretted buying a ticket.",
    "I expected to hate it, but it won me over by the end.",
    "The plot made no sense and the jokes fell flat every single time.",
]

DEMO_EPOCHS = 2.0
DEMO_TITLE = "distiltune demo: MiniLM-L6 fine-tuned on 1,500 IMDb reviews"


def demo_overrides(epochs: float = DEMO_EPOCHS, output_dir: str = "runs") -> dict[str, Any]:
    """The config overrides of the demo run: the packaged MiniLM on the bundled IMDb sample."""
    return {
        "data.dataset": "imdb-demo",
        "model.name": "minilm",
        "train.epochs": epochs,
        "run.output_dir": output_dir,
        "train.batch_size": 16,
        "train.lr": 5e-5,
    }


@dataclass
class DemoResult:
    """The demo's run and its predictions on :data:`DEMO_SENTENCES` (in that order)."""

    run: Run
    predictions: list[dict[str, Any]]


def run_demo(
    epochs: float = DEMO_EPOCHS, output_dir: str = "runs", extra_overrides: dict[str, Any] | None = None
) -> DemoResult:
    """Train the demo run, reload it from its directory and classify :data:`DEMO_SENTENCES`.

    ``extra_overrides`` go on top of the demo's settings (``benchmarks/demo.py``: ``train.precision``, or smaller
    data for a smoke run); the CLI passes none.
    """
    run = train(None, {**demo_overrides(epochs, output_dir), **(extra_overrides or {})})
    classifier = run.load()
    return DemoResult(run=run, predictions=classifier.predict(DEMO_SENTENCES))


__all__ = ["DEMO_EPOCHS", "DEMO_SENTENCES", "DEMO_TITLE", "DemoResult", "demo_overrides", "run_demo"]
