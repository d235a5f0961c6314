"""``distiltune export RUN_DIR --format onnx [--quantize int8]``: an ONNX model that serves without PyTorch.

The export is checked before it is written: the exported model predicts up to 1,000 rows from every split of the
run's data next to the PyTorch model, and an export whose label agreement is clearly below ``min_agreement`` (the
whole Wilson 95% interval under it) is refused, with nothing written, unless ``force`` is set
(:mod:`distiltune.export.parity`).

Why not Optimum: optimum 2.x has no ONNX Runtime backend any more and ``optimum-onnx`` pins transformers
4.x. ``torch.onnx.export`` (the TorchScript exporter), ONNX Runtime's transformer optimizer and
``onnxruntime.quantization.quantize_dynamic`` do the same job for encoder classifiers.

How the graph is traced, fused (attention, LayerNorm, GELU; residual LayerNorms deliberately left unfused for
CPU speed) and why: :mod:`distiltune.export.onnx`. Quantization: :mod:`distiltune.export.quantize`. The parity
check: :mod:`distiltune.export.parity`.

Layout (one self-contained folder per variant)::

    RUN_DIR/export/onnx/        model.onnx, tokenizer files, labels.json, config.json, export.json
                                (+ calibration.json when the run fitted a temperature or threshold)
    RUN_DIR/export/onnx-int8/   the same with int8 (dynamic) quantized weights

The graph computes the raw logits of one window; the run's long-text reading (``data.long_text``, recorded in
export.json) and its calibration (``calibration.json``) are applied around it by the same inference path as the
PyTorch model's (``Classifier.load(run, backend="onnx")``), so both backends predict alike.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distiltune import runs
from distiltune.errors import ExportError
from distiltune.export.onnx import ONNX_OPSET, export_onnx, optimize_graph
from distiltune.export.parity import (
    DEFAULT_MIN_AGREEMENT,
    DEFAULT_PARITY_SAMPLES,
    clearly_below,
    parity_inputs,
    parity_report,
)
from distiltune.export.quantize import quantize_int8
from distiltune.inference.classifier import Classifier
from distiltune.inference.onnx_runtime import ONNX_FILE, REPORT_FILE, OnnxSequenceClassifier, default_export_dir
from distiltune.methods import get_method
from distiltune.modeling.heads import head_module_names

logger = logging.getLogger("distiltune")

FORMATS = ("onnx",)
QUANTIZATIONS = ("int8",)


@dataclass
class ExportResult:
    path: Path
    """The written export folder, or None when the check failed and nothing was written."""
    report: dict[str, Any]


def export_run(
    run_dir: str | Path,
    format: str = "onnx",
    quantize: str | None = None,
    output: str | Path | None = None,
    min_agreement: float | None = None,
    force: bool = False,
    max_samples: int | None = DEFAULT_PARITY_SAMPLES,
    batch_size: int | None = None,
    optimize: bool = True,
) -> ExportResult:
    """Export a run, check parity against PyTorch, and write it (or raise ExportError, writing nothing).

    ``min_agreement`` defaults to :data:`DEFAULT_MIN_AGREEMENT` for the quantization; ``optimize`` fuses the graph
    with ONNX Runtime's transformer optimizer (faster, ONNX Runtime only). ``batch_size`` is the parity check's
    (unset: each backend's default batching, so its samples/s are what serving gets).
    """
    _require_onnx()
    if format not in FORMATS:
        raise ExportError(f"Unknown export format '{format}'.", f"Choose one of: {', '.join(FORMATS)}.")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ExportError(f"Unknown quantization '{quantize}'.", f"Choose one of: {', '.join(QUANTIZATIONS)}.")
    if min_agreement is None:
        min_agreement = DEFAULT_MIN_AGREEMENT[quantize]
    if min_agreement < 0:
        # Above 1 is allowed: it can never pass, so it checks parity without writing anything.
        raise ExportError(f"--min-agreement must be >= 0, got {min_agreement}.", "Use e.g. --min-agreement 0.99.")
    run_dir = Path(run_dir)
    method = runs.saved_method(run_dir)
    if method is not None and not get_method(method).trains_with_trainer:
        raise ExportError(
            f"{run_dir} uses the {method} method, which has no encoder: only encoder runs export to ONNX."
        )
    reference = Classifier.load(run_dir, device="cpu", precision="fp32")
    model = merged_for_export(reference.model)
    texts, pairs, gold, parity_rows = parity_inputs(reference, max_samples)
    target = Path(output) if output is not None else default_export_dir(run_dir, quantize)

    # Stage on the same filesystem as the target when its folder exists, so the final move is a rename; a
    # refused export leaves nothing behind, not even an empty export/ folder.
    staging_root = target.parent if target.parent.is_dir() else run_dir
    with tempfile.TemporaryDirectory(prefix=".export-", dir=staging_root) as staging_name:
        staging = Path(staging_name) / "export"
        staging.mkdir()
        started = time.perf_counter()
        export_onnx(model, reference.tokenizer, staging / ONNX_FILE)
        fused = optimize_graph(staging / ONNX_FILE, model.config) if optimize else {}
        if quantize == "int8":
            float_path = staging / "model.fp32.onnx"
            (staging / ONNX_FILE).rename(float_path)
            quantize_int8(float_path, staging / ONNX_FILE, float_modules=head_module_names(model))
            float_path.unlink()
        export_seconds = time.perf_counter() - started

        exported = OnnxSequenceClassifier(staging / ONNX_FILE, reference.model.config)
        report = parity_report(reference, exported, texts, pairs, gold, batch_size)
        report.update(
            {
                "format": format,
                "quantize": quantize,
                "opset": ONNX_OPSET,
                "optimized": bool(fused),
                "fused_operators": fused,
                "run_dir": str(run_dir),
                "samples_per_split": parity_rows,
                "long_text": dataclasses.asdict(reference.long_text),
                "min_agreement": min_agreement,
                "refused_without_force": clearly_below(report, min_agreement),
                "forced": bool(force and clearly_below(report, min_agreement)),
                "export_seconds": round(export_seconds, 2),
                "size_mb": round((staging / ONNX_FILE).stat().st_size / 2**20, 2),
            }
        )
        if clearly_below(report, min_agreement) and not force:
            low, high = report["agreement_interval"]
            raise ExportError(
                f"Export refused: the {format}{'-' + quantize if quantize else ''} model agrees with PyTorch on "
                f"{report['agreement']:.2%} of {report['samples']} rows (95% interval {low:.2%} to {high:.2%}), "
                f"clearly below --min-agreement {min_agreement:.2%}; nothing was written.",
                "Export without --quantize"
                + (", try --no-optimize (unfused graph)" if fused else "")
                + ", lower --min-agreement, or pass --force to write it anyway.",
            )
        reference.tokenizer.save_pretrained(staging)
        model.config.save_pretrained(staging)
        shutil.copy2(run_dir / runs.MODEL_DIR / runs.LABELS_FILE, staging / runs.LABELS_FILE)
        calibration = run_dir / runs.MODEL_DIR / runs.CALIBRATION_FILE
        if calibration.is_file():
            shutil.copy2(calibration, staging / runs.CALIBRATION_FILE)
        runs.write_json(staging / REPORT_FILE, report)
        if target.exists():
            shutil.rmtree(target)  # an export is derived data: re-exporting replaces it
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(target))
    logger.info(
        "Wrote %s (agreement %.4f on %d rows, 95%% interval %.4f to %.4f).",
        target,
        report["agreement"],
        report["samples"],
        *report["agreement_interval"],
    )
    return ExportResult(path=target, report=report)


def merged_for_export(model: Any) -> Any:
    """A plain transformers model: adapters (LoRA) are merged into the weights, so serving has no overhead."""
    if hasattr(model, "merge_and_unload"):
        import copy

        model = copy.deepcopy(model).merge_and_unload()
    return model.float().eval()


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ExportError(
            "ONNX export needs the onnx and onnxruntime packages.", "Install them: pip install 'distiltune[onnx]'."
        ) from None


__all__ = ["FORMATS", "QUANTIZATIONS", "ExportResult", "export_run", "merged_for_export"]
