"""Serving an ONNX export with ONNX Runtime: the session that stands in for the PyTorch model, and finding a run's
export. The exporter itself is :mod:`distiltune.export`.

Layout (one self-contained folder per variant)::

    RUN_DIR/export/onnx/        model.onnx, tokenizer files, labels.json, config.json, export.json
    RUN_DIR/export/onnx-int8/   the same with int8 (dynamic) quantized weights
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from distiltune import runs
from distiltune.errors import RunError

logger = logging.getLogger("distiltune")

ONNX_FILE = "model.onnx"
#: The export's parity report (agreement with PyTorch, fused operators, settings), written beside model.onnx.
REPORT_FILE = "export.json"
#: ONNX Runtime graph rewrites that CPU sessions skip. ``SkipLayerNormFusion`` turns residual ``Add`` +
#: ``LayerNormalization`` into ``SkipLayerNormalization``, whose CPU kernel (onnxruntime 1.32, 2-core Sapphire
#: Rapids) takes 394 us on a 281 x 384 input where ``Add`` + ``Add`` + ``LayerNormalization`` take 85 us
#: (benchmarks/onnx_profile.py). Skipping it took MiniLM int8 predictions on IMDb from 45.2 to 55.3 samples/s
#: (docs/performance.md). The export's own optimizer pass leaves the LayerNorms unfused too, but a session would
#: fuse them again without this.
CPU_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


def default_export_dir(run_dir: Path, quantize: str | None) -> Path:
    return Path(run_dir) / runs.EXPORT_DIR / ("onnx" if quantize is None else f"onnx-{quantize}")


class OnnxSequenceClassifier:
    """An ONNX Runtime session that looks like a transformers classifier to :func:`predict_logits`:
    ``model(**batch).logits`` and ``model.config``."""

    def __init__(self, path: str | Path, config: Any, threads: int | None = None) -> None:
        import onnxruntime as ort
        import torch

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()
        providers = [
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()
        ]
        # The GPU's SkipLayerNormalization kernel is the fast one; only a CPU session skips that fusion.
        disabled = [] if "CUDAExecutionProvider" in providers else list(CPU_DISABLED_OPTIMIZERS)
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=providers, disabled_optimizers=disabled)
        if disabled:
            warn_if_slow_on_cpu(self.path.parent)
        self.input_names = [item.name for item in self.session.get_inputs()]
        self.config = config

    def eval(self) -> OnnxSequenceClassifier:
        return self

    def to(self, *_: Any, **__: Any) -> OnnxSequenceClassifier:
        return self

    def __call__(self, **batch: Any) -> SimpleNamespace:
        import torch

        reference = batch["input_ids"]
        feeds = {}
        for name in self.input_names:
            value = batch.get(name)
            if value is None:  # e.g. token_type_ids for single texts: all zeros
                value = torch.zeros_like(reference)
            feeds[name] = value.detach().cpu().numpy().astype(np.int64)
        (logits,) = self.session.run(["logits"], feeds)
        return SimpleNamespace(logits=torch.from_numpy(logits))


def warn_if_slow_on_cpu(export_dir: Path) -> None:
    """Exports written before distiltune left residual LayerNorms unfused hold ``SkipLayerNormalization`` nodes in
    the file itself, which no session setting undoes: on a CPU they serve slower until re-exported."""
    report_path = export_dir / REPORT_FILE
    if not report_path.is_file():
        return
    report = runs.read_json(report_path)
    if not (report.get("fused_operators") or {}).get("SkipLayerNormalization"):
        return
    quantize = " --quantize int8" if report.get("quantize") == "int8" else ""
    logger.warning(
        "%s holds SkipLayerNormalization nodes (an export from an older distiltune). ONNX Runtime's CPU kernel for "
        "them is 2-5x slower than plain LayerNorm; a re-export serves 10-20%% faster on a CPU: "
        "distiltune export %s --format onnx%s",
        export_dir,
        report.get("run_dir", "RUN_DIR"),
        quantize,
    )


def find_export(run_dir: Path, export_dir: str | Path | None = None) -> Path:
    """The export folder to serve: ``export_dir`` if given, else int8 when present, else fp32."""
    candidates = (
        [Path(export_dir)]
        if export_dir is not None
        else [default_export_dir(run_dir, "int8"), default_export_dir(run_dir, None)]
    )
    for candidate in candidates:
        if (candidate / ONNX_FILE).is_file():
            return candidate
    raise RunError(
        f"{run_dir}: no ONNX export found (looked for {', '.join(str(c / ONNX_FILE) for c in candidates)}).",
        f"Create one first: distiltune export {run_dir} --format onnx [--quantize int8].",
    )


__all__ = [
    "CPU_DISABLED_OPTIMIZERS",
    "ONNX_FILE",
    "REPORT_FILE",
    "OnnxSequenceClassifier",
    "default_export_dir",
    "find_export",
    "warn_if_slow_on_cpu",
]
