"""Inference backends: the registry, and that a new runtime is one registration that every predictor then offers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import distiltune
from distiltune.errors import RunError
from distiltune.inference import backends
from distiltune.inference.backends import LoadedModel, SavedRun, TorchBackend, backend_names, get_backend


def test_the_built_in_backends_and_a_misspelt_one() -> None:
    assert backend_names()[:2] == ["torch", "onnx"] and "predictor" not in backend_names()
    assert get_backend("torch").cpu_batch_tokens == 2048 and get_backend("onnx").cpu_batch_tokens == 512
    with pytest.raises(RunError, match=r"Unknown backend 'onx'. Did you mean 'onnx'\?"):
        get_backend("onx")


@dataclass(frozen=True)
class DoublingBackend:
    """A stand-in runtime: the PyTorch model with its logits doubled, and a batch budget of its own."""

    name: str = "doubling"
    description: str = "test backend"
    cpu_batch_tokens: int | None = 64

    def load(self, run: SavedRun, device: str, precision: str, export_dir: Path | None) -> LoadedModel:
        loaded = TorchBackend().load(run, device, "fp32", export_dir)
        return replace(loaded, model=Doubled(loaded.model), dtype="doubled")


class Doubled:
    def __init__(self, model: Any) -> None:
        self.model, self.config = model, model.config

    def __getattr__(self, name: str) -> Any:  # eval(), parameters(), ... of the wrapped module
        return getattr(self.model, name)

    def __call__(self, **batch: Any) -> Any:
        output = self.model(**batch)
        output.logits = output.logits * 2
        return output


@pytest.fixture
def doubling() -> Iterator[str]:
    backends.register_backend(DoublingBackend())
    yield "doubling"
    backends._BACKENDS.pop("doubling")


def test_a_registered_backend_serves_predict_with_its_own_batching(text_run: Path, doubling: str) -> None:
    reference = distiltune.load(text_run, precision="fp32")
    served = distiltune.load(text_run, backend=doubling)
    texts = ["a great film", "a dull and long film", "fine"]
    assert served.backend == "doubling" and served.dtype == "doubled"
    assert np.allclose(served.predict_logits(texts), 2 * reference.predict_logits(texts), atol=1e-5)
    assert served.batching().max_batch_tokens == 64  # the backend's budget on a CPU


def test_a_method_with_its_own_predictor_refuses_another_backend(tiny_model: str, tmp_path: Path) -> None:
    run = distiltune.train(
        None,
        {
            "data.dataset": str(Path(__file__).parents[1] / "fixtures" / "tiny.csv"),
            "data.text_column": "review",
            "data.label_column": "sentiment",
            "method.name": "tfidf",
            "run.output_dir": str(tmp_path),
        },
    )
    assert distiltune.load(run.dir).dtype == "float64"
    with pytest.raises(RunError, match="predicts with its own predictor: it has no onnx backend"):
        distiltune.load(run.dir, backend="onnx")
