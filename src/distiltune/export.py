"""``distiltune export RUN_DIR --format onnx [--quantize int8]``: an ONNX model that serves without PyTorch.

The export is checked before it is written: the exported model predicts the run's evaluation split (the
texts in ``predictions.jsonl``) next to the PyTorch model, and an export whose label agreement falls below
``min_agreement`` is refused (nothing is written) unless ``force`` is set.

Why not Optimum: optimum 2.x has no ONNX Runtime backend any more and ``optimum-onnx`` pins transformers
4.x. ``torch.onnx.export`` (the TorchScript exporter), ONNX Runtime's transformer optimizer and
``onnxruntime.quantization.quantize_dynamic`` do the same job for encoder classifiers.

The graph is traced with eager attention, because the optimizer recognises that subgraph (not SDPA's) and fuses
it into one ``Attention`` node, along with ``LayerNormalization``, ``BiasGelu`` and ``EmbedLayerNormalization``.
int8 then quantizes the fused attention too (``QAttention``). Measured on all-MiniLM-L6-v2 (IMDb, max length 512,
2-core CPU): fusion took ONNX fp32 from 16.8 to 26.1 samples/s and int8 from 22.0 to 37.0. The fused operators are
ONNX Runtime contrib ops; ``optimize=False`` (``--no-optimize``) writes a plain-ONNX graph for other runtimes.

Residual + LayerNorm is deliberately *not* fused into ``SkipLayerNormalization`` (see
:data:`CPU_DISABLED_OPTIMIZERS`): ONNX Runtime's CPU kernel for it is several times slower than the ``Add`` and
``LayerNormalization`` it replaces.

Layout (one self-contained folder per variant)::

    RUN_DIR/export/onnx/        model.onnx, tokenizer files, labels.json, config.json, export.json
    RUN_DIR/export/onnx-int8/   the same with int8 (dynamic) quantized weights
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from distiltune import runs
from distiltune.errors import ExportError, RunError

logger = logging.getLogger("distiltune")

EXPORT_DIR = "export"
ONNX_FILE = "model.onnx"
REPORT_FILE = "export.json"
FORMATS = ("onnx",)
QUANTIZATIONS = ("int8",)
#: Label agreement with PyTorch below which an export is refused. fp32 differs from PyTorch only by float
#: rounding; int8 flips a few borderline rows (measured 98.2% to 99.0% on IMDb with MiniLM, at an accuracy
#: change within a point), so it gets a lower bar.
DEFAULT_MIN_AGREEMENT = {None: 0.99, "int8": 0.98}
ONNX_OPSET = 17
#: Nodes whose names contain these stay in float when quantizing: the classification head is tiny (no
#: speed to gain) and decides the label directly, so int8 rounding there costs agreement for nothing.
FLOAT_NODE_MARKERS = ("classifier", "pre_classifier", "pooler", "score")
#: ONNX Runtime graph rewrites that CPU sessions skip. ``SkipLayerNormFusion`` turns residual ``Add`` +
#: ``LayerNormalization`` into ``SkipLayerNormalization``, whose CPU kernel (onnxruntime 1.32, 2-core Sapphire
#: Rapids) takes 394 us on a 281 x 384 input where ``Add`` + ``Add`` + ``LayerNormalization`` take 85 us
#: (benchmarks/onnx_profile.py). Skipping it took MiniLM int8 predictions on IMDb from 45.2 to 55.3 samples/s
#: (docs/performance.md). The export's own optimizer pass leaves the LayerNorms unfused too, but a session would
#: fuse them again without this.
CPU_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


@dataclass
class ExportResult:
    path: Path
    """The written export folder, or None when the check failed and nothing was written."""
    report: dict[str, Any]


def default_export_dir(run_dir: Path, quantize: str | None) -> Path:
    return Path(run_dir) / EXPORT_DIR / ("onnx" if quantize is None else f"onnx-{quantize}")


def export_run(
    run_dir: str | Path,
    format: str = "onnx",
    quantize: str | None = None,
    output: str | Path | None = None,
    min_agreement: float | None = None,
    force: bool = False,
    max_samples: int | None = 2000,
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
    from distiltune.predict import Classifier
    from distiltune.tfidf import is_tfidf_run

    run_dir = Path(run_dir)
    if is_tfidf_run(run_dir):
        raise ExportError(f"{run_dir} is a TF-IDF baseline: only encoder runs export to ONNX.")
    reference = Classifier.load(run_dir, device="cpu", precision="fp32")
    model = merged_for_export(reference.model)
    texts, pairs, gold = parity_inputs(reference, max_samples)
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
            quantize_int8(float_path, staging / ONNX_FILE)
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
                "min_agreement": min_agreement,
                "forced": bool(force and report["agreement"] < min_agreement),
                "export_seconds": round(export_seconds, 2),
                "size_mb": round((staging / ONNX_FILE).stat().st_size / 2**20, 2),
            }
        )
        if report["agreement"] < min_agreement and not force:
            raise ExportError(
                f"Export refused: the {format}{'-' + quantize if quantize else ''} model agrees with PyTorch on "
                f"{report['agreement']:.2%} of {report['samples']} evaluation rows, below --min-agreement "
                f"{min_agreement:.2%}; nothing was written.",
                "Export without --quantize"
                + (", try --no-optimize (unfused graph)" if fused else "")
                + ", lower --min-agreement, or pass --force to write it anyway.",
            )
        reference.tokenizer.save_pretrained(staging)
        model.config.save_pretrained(staging)
        shutil.copy2(run_dir / runs.MODEL_DIR / "labels.json", staging / "labels.json")
        runs.write_json(staging / REPORT_FILE, report)
        if target.exists():
            shutil.rmtree(target)  # an export is derived data: re-exporting replaces it
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(target))
    logger.info("Wrote %s (agreement %.4f on %d rows).", target, report["agreement"], report["samples"])
    return ExportResult(path=target, report=report)


def merged_for_export(model: Any) -> Any:
    """A plain transformers model: adapters (LoRA) are merged into the weights, so serving has no overhead."""
    if hasattr(model, "merge_and_unload"):
        import copy

        model = copy.deepcopy(model).merge_and_unload()
    return model.float().eval()


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


def export_onnx(model: Any, tokenizer: Any, path: Path) -> None:
    """Trace ``model`` (with eager attention) to ONNX with dynamic batch and sequence axes; the graph outputs
    ``logits``."""
    import torch

    sample = tokenizer(
        ["a short example", "a somewhat longer example sentence for tracing"],
        padding=True,
        return_tensors="pt",
    )
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]
    wrapper = _LogitsOnly(model, names).eval()
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in names}
    dynamic_axes["logits"] = {0: "batch"}
    with torch.no_grad(), warnings.catch_warnings(), _eager_attention(model):
        # The tracer warns about shape checks it freezes (padding_length, is_causal); the parity check is what
        # proves the graph right for other shapes.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            tuple(sample[name] for name in names),
            str(path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=dynamic_axes,
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


@contextlib.contextmanager
def _eager_attention(model: Any) -> Iterator[None]:
    """Switch the transformers model inside ``model`` to eager attention for the duration (where it can be)."""
    from transformers import PreTrainedModel

    inner = next((module for module in model.modules() if isinstance(module, PreTrainedModel)), None)
    previous = getattr(getattr(inner, "config", None), "_attn_implementation", None)
    if inner is None or previous in (None, "eager"):
        yield
        return
    try:
        inner.set_attn_implementation("eager")
    except (ValueError, ImportError, NotImplementedError):
        yield  # the traced graph is still right, the optimizer just fuses less
        return
    try:
        yield
    finally:
        inner.set_attn_implementation(previous)


def optimize_graph(path: Path, config: Any) -> dict[str, int]:
    """Fuse attention, LayerNorm and GELU subgraphs in place with ONNX Runtime's transformer optimizer.

    Returns the fused operator counts (empty when nothing fused or the optimizer failed: the unfused graph is
    kept, and the parity check judges whatever is written).
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    # Every supported encoder (BERT, RoBERTa, DistilBERT, MiniLM, ELECTRA...) uses the "bert" fusion patterns.
    heads = getattr(config, "num_attention_heads", 0) or 0
    hidden = getattr(config, "hidden_size", 0) or 0
    options = FusionOptions("bert")
    options.enable_skip_layer_norm = False  # slow on CPU: see CPU_DISABLED_OPTIMIZERS
    transformer_logger = logging.getLogger("onnxruntime.transformers")
    level = transformer_logger.level
    transformer_logger.setLevel(logging.ERROR)
    try:
        optimized = optimize_model(
            str(path), model_type="bert", num_heads=heads, hidden_size=hidden, optimization_options=options
        )
        counts = {name: count for name, count in optimized.get_fused_operator_statistics().items() if count}
        if counts:
            optimized.save_model_to_file(str(path))
        return counts
    except Exception as err:  # noqa: BLE001 - an optimizer bug must not cost the user the export
        logger.warning("ONNX graph optimization failed (%s); exporting the unfused graph.", err)
        return {}
    finally:
        transformer_logger.setLevel(level)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the encoder's MatMuls and fused attention; the head (and LayerNorm/Softmax)
    stay in float."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    keep_float = [node.name for node in graph.node if any(marker in node.name for marker in FLOAT_NODE_MARKERS)]
    root = logging.getLogger()
    # quantize_dynamic logs a "consider pre-processing" hint through logging.warning(), which would also
    # configure the root logger as a side effect; a NullHandler prevents that and the filter drops the hint.
    quiet, hint_filter = logging.NullHandler(), _DropMessages("pre-processing before quantization")
    root.addHandler(quiet)
    root.addFilter(hint_filter)
    try:
        quantize_dynamic(
            source,
            target,
            op_types_to_quantize=["MatMul", "Gemm", "Attention"],
            # Per channel: per-tensor ran 12% faster on MiniLM but agreed with PyTorch on 97.3% of rows, not 99.0%.
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_float,
            # Shape inference cannot type the outputs of fused contrib ops; they are all float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.removeFilter(hint_filter)
        root.removeHandler(quiet)


def parity_report(
    reference: Any,
    exported: OnnxSequenceClassifier,
    texts: list[str],
    pairs: list[str] | None,
    gold: list[str] | None,
    batch_size: int | None,
) -> dict[str, Any]:
    """Agreement of predicted labels, largest probability difference, and each model's accuracy."""
    from distiltune.inference import predict_logits
    from distiltune.metrics import softmax

    def run(model: Any, backend: str) -> tuple[np.ndarray, float]:
        batching = reference.batching(batch_size, backend)  # the reference is loaded on the CPU
        started = time.perf_counter()
        logits = predict_logits(
            model,
            reference.tokenizer,
            texts,
            pairs,
            max_length=reference.max_length,
            batch_size=batching.batch_size,
            max_batch_tokens=batching.max_batch_tokens,
        )
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


class _LogitsOnly:
    """Wraps a classifier so tracing sees positional tensor inputs and a single tensor output."""

    def __new__(cls, model: Any, names: list[str]) -> Any:
        import torch

        class LogitsOnly(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
                return self.model(**dict(zip(names, tensors, strict=True))).logits

        return LogitsOnly()


class _DropMessages(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ExportError(
            "ONNX export needs the onnx and onnxruntime packages.", "Install them: pip install 'distiltune[onnx]'."
        ) from None


__all__ = ["ExportResult", "OnnxSequenceClassifier", "export_run", "find_export"]
