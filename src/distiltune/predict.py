"""Load a finished run and predict: ``distiltune.load(run_dir).predict(texts, top_k=...)``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distiltune import runs
from distiltune.config import Config
from distiltune.data.columns import LabelSpace
from distiltune.errors import RunError
from distiltune.hardware import resolve_device, resolve_precision
from distiltune.metrics import softmax
from distiltune.speed import InferenceBatching, resolve_inference_batching

logger = logging.getLogger("distiltune")
BACKENDS = ("torch", "onnx")


@dataclass
class Classifier:
    """A trained model with its tokenizer, label names and the settings it was trained with."""

    model: Any
    tokenizer: Any
    config: Config
    labels: LabelSpace
    max_length: int
    is_pair: bool
    device: Any
    precision: str
    run_dir: Path | None = None
    backend: str = "torch"

    @classmethod
    def load(
        cls,
        run_dir: str | Path,
        device: str = "auto",
        precision: str = "auto",
        backend: str = "torch",
        export_dir: str | Path | None = None,
    ) -> Classifier:
        """Load a run. ``backend="onnx"`` serves its ONNX export (int8 when present, else fp32; or
        ``export_dir``) with ONNX Runtime instead of the PyTorch model."""
        from distiltune.methods import get_method
        from distiltune.modeling import load_tokenizer

        if backend not in BACKENDS:
            raise RunError(f"Unknown backend '{backend}'.", f"Choose one of: {', '.join(BACKENDS)}.")

        run_dir = Path(run_dir)
        from distiltune.tfidf import TfidfClassifier, is_tfidf_run

        if is_tfidf_run(run_dir):  # a scikit-learn baseline: no encoder or tokenizer to load
            if backend != "torch":
                raise RunError(f"{run_dir} is a TF-IDF baseline: it has no {backend} backend.", "Drop --backend.")
            return TfidfClassifier.from_run(run_dir)
        model_dir = check_run_dir(run_dir)
        config = Config.from_yaml(run_dir / runs.CONFIG_FILE)
        info = runs.read_json(model_dir / "labels.json")
        names = [info["id2label"][str(i)] for i in range(len(info["id2label"]))]
        if backend == "onnx":
            from distiltune.export import OnnxSequenceClassifier, find_export
            from distiltune.modeling import load_classifier_config

            onnx_dir = find_export(run_dir, export_dir)
            model = OnnxSequenceClassifier(onnx_dir / "model.onnx", load_classifier_config(model_dir))
            device, precision = "cpu", "fp32"  # ONNX Runtime picks its own provider; inputs start on the CPU
        else:
            method = get_method(info.get("method", config.method.name))
            model = method.load(model_dir, config.model)
        model_labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if model_labels != names:
            raise RunError(
                f"{run_dir}: the model's labels {model_labels} differ from labels.json {names}.",
                "The run directory is inconsistent; retrain or restore model/ from a checkpoint.",
            )
        tokenizer = load_tokenizer(str(model_dir))
        resolved_device = resolve_device(device)
        model.to(resolved_device)
        model.eval()
        return cls(
            model=model,
            tokenizer=tokenizer,
            config=config,
            labels=LabelSpace(names=names, values=names),
            max_length=int(info["max_length"]),
            is_pair=bool(info.get("is_pair")),
            device=resolved_device,
            precision=resolve_precision(precision, resolved_device),
            run_dir=run_dir,
            backend=backend,
        )

    def batching(self, batch_size: int | None = None, backend: str | None = None) -> InferenceBatching:
        """How inputs are batched: ``batch_size`` when given, else the config's ``train.eval_batch_size`` /
        ``train.eval_batch_tokens``, else the device and backend defaults (a token budget on CPU). ``backend``
        defaults to this classifier's; the export's parity check asks for ONNX's from the PyTorch classifier."""
        import torch

        train = self.config.train
        return resolve_inference_batching(
            batch_size or train.eval_batch_size,
            train.eval_batch_tokens,
            torch.device(self.device).type,
            backend or self.backend,
        )

    @property
    def label_names(self) -> list[str]:
        return self.labels.names

    def predict_logits(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        batch_size: int | None = None,
        truncation_side: str | None = None,
    ) -> np.ndarray:
        """The model's raw scores, [n, labels], in input order. ``truncation_side`` "left" keeps the end of inputs
        longer than ``max_length`` (default: the tokenizer's side, "right")."""
        from distiltune.inference import predict_logits

        if isinstance(texts, str):
            texts = [texts]
        if isinstance(pairs, str):
            pairs = [pairs]
        batching = self.batching(batch_size)
        return predict_logits(
            self.model,
            self.tokenizer,
            list(texts),
            list(pairs) if pairs is not None else None,
            max_length=self.max_length,
            batch_size=batching.batch_size,
            device=self.device,
            precision=self.precision,
            sort_by_length=self.config.train.sort_by_length,
            dynamic_padding=self.config.train.dynamic_padding,
            max_batch_tokens=batching.max_batch_tokens,
            truncation_side=truncation_side,
        )

    def predict_proba(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        batch_size: int | None = None,
        truncation_side: str | None = None,
    ) -> np.ndarray:
        return softmax(self.predict_logits(texts, pairs, batch_size, truncation_side))

    def predict(
        self,
        texts: str | Sequence[str],
        pairs: str | Sequence[str] | None = None,
        top_k: int = 1,
        batch_size: int | None = None,
    ) -> list[dict[str, Any]]:
        """For each input: ``{"label": best, "score": p, "scores": [{"label", "score"}, ... top_k]}``."""
        probabilities = self.predict_proba(texts, pairs, batch_size)
        top_k = max(1, min(top_k, len(self.label_names)))
        results = []
        for row in probabilities:
            order = np.argsort(-row, kind="stable")[:top_k]
            scores = [{"label": self.label_names[i], "score": round(float(row[i]), 6)} for i in order]
            results.append({"label": scores[0]["label"], "score": scores[0]["score"], "scores": scores})
        return results

    def evaluate_frame(self, frame: pd.DataFrame) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        from distiltune.evaluation import evaluate_frame

        batching = self.batching()
        return evaluate_frame(
            self.model,
            self.tokenizer,
            frame,
            self.label_names,
            self.max_length,
            batching.batch_size,
            self.device,
            self.precision,
            sort_by_length=self.config.train.sort_by_length,
            dynamic_padding=self.config.train.dynamic_padding,
            max_batch_tokens=batching.max_batch_tokens,
        )


def load(run_dir: str | Path, **kwargs: Any) -> Classifier:
    """Load a finished run for prediction."""
    return Classifier.load(run_dir, **kwargs)


def check_run_dir(run_dir: Path) -> Path:
    """Fail with a clear message unless the run has a config, label map, tokenizer and safetensors weights."""
    if not run_dir.is_dir():
        raise RunError(f"Run directory not found: {run_dir}.", "Pass a folder created by distiltune train.")
    model_dir = run_dir / runs.MODEL_DIR
    if not (run_dir / runs.CONFIG_FILE).is_file() or not model_dir.is_dir():
        status = run_dir / "status.json"
        hint = "It may still be running, or it failed before saving a model."
        if status.exists():
            record = runs.read_json(status)
            hint = f"Its status.json says: {record.get('status', 'unknown')}."
            if record.get("resume"):
                hint += f" Finish it with: {record['resume']}"
        raise RunError(f"{run_dir} holds no finished model (config.yaml and model/ are required).", hint)
    missing = [name for name in ("labels.json", "config.json") if not (model_dir / name).is_file()]
    if not any(model_dir.glob("*.safetensors")):
        missing.append("*.safetensors weights")
    if not any((model_dir / name).is_file() for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        missing.append("tokenizer files")
    if (model_dir / "labels.json").is_file():
        missing += _missing_method_files(model_dir)
    if missing:
        raise RunError(
            f"{model_dir} is incomplete: missing {', '.join(missing)}.",
            "Retrain, or copy the files back from a checkpoint.",
        )
    _check_consistency(model_dir)
    return model_dir


def _missing_method_files(model_dir: Path) -> list[str]:
    """Files the run's method needs in ``model/`` (an adapter's config and weights, ...)."""
    from distiltune.methods import METHODS

    method = METHODS.get(str(runs.read_json(model_dir / "labels.json").get("method", "full")))
    if method is None:
        return []
    return [name for name in method.required_files if not (model_dir / name).is_file()]


def _check_consistency(model_dir: Path) -> None:
    """Before loading anything heavy: the label map, model config and weight files agree and are whole."""
    from safetensors import safe_open

    broken = "The run directory is damaged; retrain, or restore model/ from a copy."
    try:
        labels = runs.read_json(model_dir / "labels.json")
        model_config = runs.read_json(model_dir / "config.json")
        id2label = labels["id2label"]
    except (ValueError, KeyError, TypeError) as err:
        raise RunError(f"{model_dir}: labels.json or config.json is not valid ({err}).", broken) from None
    model_labels = model_config.get("id2label")
    if isinstance(model_labels, dict) and len(model_labels) != len(id2label):
        raise RunError(
            f"{model_dir}: labels.json has {len(id2label)} labels but model/config.json has {len(model_labels)}.",
            broken,
        )
    for weights in sorted(model_dir.glob("*.safetensors")):
        try:
            # Opening reads the header and checks it against the file size: a truncated copy fails here.
            with safe_open(str(weights), framework="pt") as handle:
                handle.keys()
        except Exception as err:  # safetensors raises its own error types for damaged files
            raise RunError(f"{weights} is damaged ({' '.join(str(err).split())[:120]}).", broken) from None
