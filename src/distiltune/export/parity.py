"""The export's parity check: the exported model and the PyTorch model predict the same rows; the export is
refused when they disagree too often."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from distiltune import runs
from distiltune.errors import RunError
from distiltune.metrics import softmax
from distiltune.serving.inference import predict_logits

#: Label agreement with PyTorch below which an export is refused. fp32 differs from PyTorch only by float
#: rounding; int8 flips a few borderline rows (measured 98.2% to 99.0% on IMDb with MiniLM, at an accuracy
#: change within a point), so it gets a lower bar.
DEFAULT_MIN_AGREEMENT = {None: 0.99, "int8": 0.98}


def parity_inputs(reference: Any, max_samples: int | None) -> tuple[list[str], list[str] | None, list[str] | None]:
    """Texts (and gold labels) of the run's evaluated split from ``predictions.jsonl``."""
    run_dir = reference.run_dir
    rows = runs.read_jsonl(run_dir / runs.PREDICTIONS_FILE) if run_dir is not None else []
    rows = [row for row in rows if isinstance(row.get("text"), str)]
    if not rows:
        raise RunError(
            f"{run_dir}: no {runs.PREDICTIONS_FILE} with texts to check the export against.",
            "Re-run distiltune evaluate or train so the run has an evaluated split.",
        )
    if max_samples is not None:
        rows = rows[:max_samples]
    pairs = [row.get("text_pair", "") for row in rows] if reference.is_pair else None
    gold = [row["gold"] for row in rows] if all("gold" in row for row in rows) else None
    return [row["text"] for row in rows], pairs, gold


def parity_report(
    reference: Any,
    exported: Any,
    texts: list[str],
    pairs: list[str] | None,
    gold: list[str] | None,
    batch_size: int | None,
) -> dict[str, Any]:
    """Agreement of predicted labels, largest probability difference, and each model's accuracy."""

    def run(model: Any, backend: str) -> tuple[np.ndarray, float]:
        settings = reference.inference_settings(batch_size, backend)  # the reference is loaded on the CPU
        started = time.perf_counter()
        logits = predict_logits(model, reference.tokenizer, texts, pairs, settings)
        return softmax(logits), time.perf_counter() - started

    torch_probabilities, torch_seconds = run(reference.model, "torch")
    onnx_probabilities, onnx_seconds = run(exported, "onnx")
    torch_labels = torch_probabilities.argmax(axis=-1)
    onnx_labels = onnx_probabilities.argmax(axis=-1)
    report: dict[str, Any] = {
        "samples": len(texts),
        "agreement": float((torch_labels == onnx_labels).mean()),
        "max_probability_difference": float(np.abs(torch_probabilities - onnx_probabilities).max()),
        "torch_samples_per_second": round(len(texts) / torch_seconds, 2),
        "onnx_samples_per_second": round(len(texts) / onnx_seconds, 2),
    }
    if gold is not None:
        names = reference.label_names
        gold_ids = np.array([names.index(label) if label in names else -1 for label in gold])
        report["torch_accuracy"] = float((torch_labels == gold_ids).mean())
        report["onnx_accuracy"] = float((onnx_labels == gold_ids).mean())
    return report


__all__ = ["DEFAULT_MIN_AGREEMENT", "parity_inputs", "parity_report"]
