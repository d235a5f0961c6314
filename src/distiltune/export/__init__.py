"""``distiltune export``: ONNX (optionally int8) exports of a run, checked against PyTorch before they are written.

The runtime side (serving an export with ONNX Runtime) is :mod:`distiltune.inference.onnx_runtime`.
"""

from __future__ import annotations

from distiltune.export.exporter import FORMATS, QUANTIZATIONS, ExportResult, export_run, merged_for_export
from distiltune.export.onnx import export_onnx, optimize_graph
from distiltune.export.parity import DEFAULT_MIN_AGREEMENT
from distiltune.export.quantize import quantize_int8
from distiltune.inference.onnx_runtime import CPU_DISABLED_OPTIMIZERS, OnnxSequenceClassifier, find_export

__all__ = [
    "CPU_DISABLED_OPTIMIZERS",
    "DEFAULT_MIN_AGREEMENT",
    "FORMATS",
    "QUANTIZATIONS",
    "ExportResult",
    "OnnxSequenceClassifier",
    "export_onnx",
    "export_run",
    "find_export",
    "merged_for_export",
    "optimize_graph",
    "quantize_int8",
]
