"""Inference backends: what runs a saved model's forward pass, behind one small protocol and a registry.

A :class:`Backend` turns a saved run (:class:`SavedRun`: its folders, config, labels and method) into a
:class:`LoadedModel`: the model that :func:`distiltune.inference.batched.predict_logits` calls
(``model(**batch).logits`` and ``model.config``), or a method's own predictor (``predict_logits(texts, pairs)``),
with its tokenizer, device, precision, the folder its calibration is read from and the number format it computes in.
The backend also says how big a batch it likes on a CPU (a padded-token budget).

Built in: ``torch`` (the PyTorch model the method saved), ``onnx`` (the run's ONNX export, served by ONNX Runtime)
and ``predictor`` (the own predictor of a method outside the Trainer, such as TF-IDF: a run of such a method always
predicts with it). A new runtime (OpenVINO, say) is one class with the three fields and ``load``, registered with
:func:`register_backend` (in its own module of this package, imported at the end of this one, or here);
``Classifier.load(run, backend=...)``, ``predict``, ``evaluate``, ``export``'s parity check and ``serve`` then offer
it. Its export, if it needs one, goes in :mod:`distiltune.export`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from distiltune import runs
from distiltune.config import Config
from distiltune.errors import RunError
from distiltune.methods import Method

#: TEI's names for the number formats a model computes in (``/info``'s ``model_dtype``).
DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "fp64": "float64"}


@dataclass(frozen=True)
class SavedRun:
    """A finished run as a backend sees it (checked complete by ``check_run_dir`` before any backend loads)."""

    run_dir: Path
    model_dir: Path
    config: Config
    info: dict[str, Any]
    """``model/labels.json``."""
    method: Method
    label_names: list[str]


@dataclass(frozen=True)
class LoadedModel:
    """What a backend hands the :class:`~distiltune.inference.classifier.Classifier`."""

    model: Any
    tokenizer: Any | None
    """None for a method's own predictor (it reads the texts itself)."""
    device: Any
    precision: str
    calibration_dir: Path
    """Where ``calibration.json`` is read: the run's ``model/``, or an export's copy of it."""
    dtype: str
    """The number format the model computes in, as TEI's ``/info`` names it (float32, bfloat16, int8, ...)."""


class Backend(Protocol):
    """One way to run a saved model."""

    name: str
    description: str
    cpu_batch_tokens: int | None
    """The padded-token budget of a prediction batch on a CPU when the config sets neither
    ``train.eval_batch_size`` nor ``train.eval_batch_tokens`` (None: fixed-size batches)."""

    def load(self, run: SavedRun, device: str, precision: str, export_dir: Path | None) -> LoadedModel:
        """Load ``run``'s model on ``device`` in ``precision`` (``export_dir``: an export folder to serve instead
        of the default one, for backends that serve exports). Raise a RunError when the run cannot be served so."""
        ...


_BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    if backend.name != backend.name.lower() or backend.name in _BACKENDS:
        raise ValueError(f"Backend names must be lower-case and unique: {backend.name!r}")
    _BACKENDS[backend.name] = backend
    return backend


def backend_names() -> list[str]:
    """The backends a user can ask for (``predictor`` is chosen by the run's method, never asked for)."""
    return [name for name in _BACKENDS if name != PREDICTOR]


def get_backend(name: str) -> Backend:
    if name not in _BACKENDS:
        close = difflib.get_close_matches(name, backend_names(), n=1, cutoff=0.5)
        hint = f"Did you mean '{close[0]}'?" if close else f"Choose one of: {', '.join(backend_names())}."
        raise RunError(f"Unknown backend '{name}'.", hint)
    return _BACKENDS[name]


def backend_for(run: SavedRun, requested: str) -> Backend:
    """The backend that serves ``run`` when ``requested`` is asked for: a method with its own predictor always uses
    it (``torch``, the default, stands for it; any other backend is refused in one line)."""
    get_backend(requested)  # an unknown name fails first, with its did-you-mean
    if run.method.load_predictor is None:
        return get_backend(requested)
    if requested != "torch":
        raise RunError(
            f"{run.run_dir} uses the {run.method.name} method, which predicts with its own predictor: it has no "
            f"{requested} backend.",
            "Drop --backend.",
        )
    return get_backend(PREDICTOR)


# --- the built-in backends -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TorchBackend:
    """The PyTorch model the run's method saved (safetensors), on any torch device and precision."""

    name: str = "torch"
    description: str = "the PyTorch model the run saved"
    #: Measured on MiniLM, 2 cores, against a fixed batch of 8 (IMDb reviews at 512 tokens / SST-2 sentences of
    #: 25 tokens on average): 1.04x / 1.20x (see ``distiltune.inference.batched``).
    cpu_batch_tokens: int | None = 2048

    def load(self, run: SavedRun, device: str, precision: str, export_dir: Path | None) -> LoadedModel:
        # Deferred: torch, transformers and peft take seconds to import.
        from distiltune.hardware import resolve_device, resolve_precision
        from distiltune.modeling import load_tokenizer

        model = run.method.load(run.model_dir, run.config.model)  # type: ignore[misc]
        _check_labels(run, model)
        resolved = resolve_device(device)
        model.to(resolved)
        model.eval()
        resolved_precision = resolve_precision(precision, resolved)
        return LoadedModel(
            model=model,
            tokenizer=load_tokenizer(str(run.model_dir)),
            device=resolved,
            precision=resolved_precision,
            calibration_dir=run.model_dir,
            dtype=precision_dtype(resolved_precision),
        )


@dataclass(frozen=True)
class OnnxBackend:
    """The run's ONNX export (``distiltune export``), int8 when present, else fp32, served by ONNX Runtime."""

    name: str = "onnx"
    description: str = "the run's ONNX export (int8 when present), with ONNX Runtime"
    #: ONNX Runtime's attention slows down with padding and batch size more than torch's SDPA: int8 with 512 tokens
    #: was 1.20x / 1.09x a fixed batch of 8 (see ``distiltune.inference.batched``).
    cpu_batch_tokens: int | None = 512

    def load(self, run: SavedRun, device: str, precision: str, export_dir: Path | None) -> LoadedModel:
        from distiltune.inference.onnx_runtime import ONNX_FILE, OnnxSequenceClassifier, find_export
        from distiltune.modeling import load_classifier_config, load_tokenizer

        if not run.method.trains_with_trainer:
            raise RunError(
                f"{run.run_dir} uses the {run.method.name} method, which has no ONNX export.", "Drop --backend."
            )
        folder = find_export(run.run_dir, export_dir)
        model = OnnxSequenceClassifier(folder / ONNX_FILE, load_classifier_config(run.model_dir))
        _check_labels(run, model)
        return LoadedModel(
            model=model,
            tokenizer=load_tokenizer(str(run.model_dir)),
            device="cpu",  # ONNX Runtime picks its own provider; inputs start on the CPU
            precision="fp32",
            calibration_dir=folder,
            dtype=export_dtype(folder),
        )


PREDICTOR = "predictor"


@dataclass(frozen=True)
class PredictorBackend:
    """The own predictor of a method outside the Trainer (``Method.load_predictor``: TF-IDF's linear model)."""

    name: str = PREDICTOR
    description: str = "the method's own predictor (methods outside the Trainer)"
    cpu_batch_tokens: int | None = None

    def load(self, run: SavedRun, device: str, precision: str, export_dir: Path | None) -> LoadedModel:
        predictor = run.method.load_predictor(run.model_dir)  # type: ignore[misc]
        facts = predictor.run_facts() if hasattr(predictor, "run_facts") else {}
        own = str(facts.get("precision", "fp32"))
        return LoadedModel(
            model=predictor,
            tokenizer=None,
            device="cpu",
            precision=own,
            calibration_dir=run.model_dir,
            dtype=precision_dtype(own),
        )


def precision_dtype(precision: str) -> str:
    """TEI's name for a torch precision (``bf16`` -> ``bfloat16``)."""
    return DTYPE_NAMES.get(precision, precision)


def export_dtype(folder: Path) -> str:
    """What an ONNX export computes in: int8 when its report says it was quantized, else float32."""
    from distiltune.inference.onnx_runtime import REPORT_FILE

    report = runs.read_json(folder / REPORT_FILE) if (folder / REPORT_FILE).is_file() else {}
    return "int8" if report.get("quantize") == "int8" else "float32"


def _check_labels(run: SavedRun, model: Any) -> None:
    model_labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if model_labels != run.label_names:
        raise RunError(
            f"{run.run_dir}: the model's labels {model_labels} differ from labels.json {run.label_names}.",
            "The run directory is inconsistent; retrain or restore model/ from a checkpoint.",
        )


for _backend in (TorchBackend(), OnnxBackend(), PredictorBackend()):
    register_backend(_backend)


__all__ = [
    "DTYPE_NAMES",
    "PREDICTOR",
    "Backend",
    "LoadedModel",
    "OnnxBackend",
    "PredictorBackend",
    "SavedRun",
    "TorchBackend",
    "backend_for",
    "backend_names",
    "export_dtype",
    "get_backend",
    "precision_dtype",
    "register_backend",
]
