"""ONNX export: round trip with a parity check, a refused export writes nothing, serving with --backend onnx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import distiltune
from distiltune.cli import app
from distiltune.errors import ExportError, RunError
from distiltune.export import export_run, merged_for_export

TEXTS = ["the movie was great and fun", "boring awful plot", "the acting", "love it", "hate this very dull film"]


@pytest.fixture(scope="module")
def trained_run(tiny_model: str, tmp_path_factory: pytest.TempPathFactory):
    from conftest import FIXTURES

    return distiltune.train(
        None,
        {
            "model.name": tiny_model,
            "data.dataset": str(FIXTURES / "tiny.csv"),
            "data.text_column": "review",
            "data.label_column": "sentiment",
            "data.max_length": 16,
            "data.validation_fraction": 0.25,
            "train.epochs": 2,
            "train.batch_size": 4,
            "train.lr": 1e-3,
            "train.precision": "fp32",
            "run.output_dir": str(tmp_path_factory.mktemp("export-runs")),
        },
    )


def test_onnx_export_round_trip_passes_parity_and_predicts_like_torch(trained_run) -> None:
    result = export_run(trained_run.dir, min_agreement=0.99)
    assert result.path == trained_run.dir / "export" / "onnx"
    assert {"model.onnx", "export.json", "labels.json", "config.json", "tokenizer.json"} <= {
        p.name for p in result.path.iterdir()
    }
    report = json.loads((result.path / "export.json").read_text())
    # Rows from every split of the run's data (tiny.csv: 18 train, 6 validation), not only the evaluated one.
    assert report["samples"] == 24 and report["samples_per_split"] == {"train": 18, "validation": 6}
    assert report["agreement"] == 1.0 and report["agreement_interval"][1] == 1.0
    assert report["optimized"] and report["fused_operators"]["Attention"] == 2
    assert report["max_probability_difference"] < 1e-4
    assert report["onnx_accuracy"] == report["torch_accuracy"]

    torch_classifier = trained_run.load(precision="fp32")
    onnx_classifier = distiltune.load(trained_run.dir, backend="onnx")
    assert onnx_classifier.backend == "onnx"
    # each backend batches under its own CPU token budget unless the run or the call sets a batch size
    assert (onnx_classifier.batching().max_batch_tokens, torch_classifier.batching().max_batch_tokens) == (512, 2048)
    assert onnx_classifier.batching(4).max_batch_tokens is None
    assert torch_classifier.batching(backend="onnx") == onnx_classifier.batching()  # what the parity check uses
    assert np.allclose(onnx_classifier.predict_proba(TEXTS), torch_classifier.predict_proba(TEXTS), atol=1e-4)
    assert [r["label"] for r in onnx_classifier.predict(TEXTS)] == [
        r["label"] for r in torch_classifier.predict(TEXTS)
    ]


def test_a_divergent_export_is_refused_at_the_default_threshold(trained_run, monkeypatch) -> None:
    """An export whose weights differ from the model's (the classifier's rows swapped, so labels flip) is refused
    by the parity check as it stands, not by an impossible threshold."""
    import copy

    from distiltune.export import exporter

    real_export = exporter.export_onnx

    def export_perturbed(model: Any, tokenizer: Any, path: Path) -> None:
        perturbed = copy.deepcopy(model)
        weight = perturbed.classifier.weight.data
        perturbed.classifier.weight.data = weight.flip(0)
        perturbed.classifier.bias.data = perturbed.classifier.bias.data.flip(0)
        real_export(perturbed, tokenizer, path)

    monkeypatch.setattr(exporter, "export_onnx", export_perturbed)
    target = trained_run.dir / "export" / "onnx-divergent"
    with pytest.raises(ExportError, match="clearly below --min-agreement"):
        export_run(trained_run.dir, output=target)
    assert not target.exists()


def test_the_int8_export_of_a_healthy_run_passes_the_default_threshold(trained_run, tmp_path: Path) -> None:
    result = export_run(trained_run.dir, quantize="int8", output=tmp_path / "int8")
    assert result.report["forced"] is False and result.report["refused_without_force"] is False
    assert result.report["min_agreement"] == 0.98


def test_agreement_is_judged_by_its_interval() -> None:
    from distiltune.export.parity import clearly_below, wilson_interval

    # One flipped row in 30 (a sound int8 model on small data) is no clear shortfall from 98%...
    low, high = wilson_interval(29, 30)
    assert low == pytest.approx(0.8333, abs=1e-3) and high == pytest.approx(0.9941, abs=1e-3)
    assert not clearly_below({"agreement_interval": [low, high]}, 0.98)
    # ...but 970 of 1,000 is.
    assert clearly_below({"agreement_interval": list(wilson_interval(970, 1000))}, 0.98)
    assert wilson_interval(0, 0) == (0.0, 1.0) and wilson_interval(10, 10)[1] == pytest.approx(1.0)


#: Wilson intervals of the hand-written formula (z = 1.959964) that scipy's binomtest replaced, computed with that code
#: (commit c6bcf06) before it was deleted: (agreeing, total) -> (low, high).
OLD_WILSON_INTERVALS = {
    (29, 30): (0.8332960885388428, 0.9940914096838022),
    (970, 1000): (0.9574965857376578, 0.9789062612293897),
    (10, 10): (0.7224671969739421, 0.9999999999999999),
    (0, 10): (0.0, 0.2775328030260577),
    (1, 1): (0.2065493117918027, 1.0),
    (0, 1): (0.0, 0.7934506882081973),
    (990, 1000): (0.9816905310453642, 0.9945592455798556),
    (999, 1000): (0.9943574413400738, 0.9998234536313233),
    (500, 1000): (0.46906960012506277, 0.5309303998749372),
    (1, 3): (0.06149194402093078, 0.7923404011921757),
}


def test_wilson_interval_matches_the_previous_formula() -> None:
    from distiltune.export.parity import wilson_interval

    # scipy takes the exact 97.5% normal quantile (1.95996398454...), the old code z rounded to 1.959964: a relative
    # change of 8e-9 in z moves each end by less than 1e-8 (measured: 3.2e-9 at most). The report rounds to 1e-6.
    for (agreeing, total), previous in OLD_WILSON_INTERVALS.items():
        assert wilson_interval(agreeing, total) == pytest.approx(previous, abs=1e-8), (agreeing, total)


def test_int8_export_below_the_threshold_is_refused_and_writes_nothing(trained_run) -> None:
    target = trained_run.dir / "export" / "onnx-int8"
    # No export can agree on more than 100% of rows: the check must fail, exit 2, and leave nothing behind.
    command = [sys.executable, "-m", "distiltune", "export", str(trained_run.dir), "--format", "onnx"]
    result = subprocess.run(
        command + ["--quantize", "int8", "--min-agreement", "1.01"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Export refused" in errors[0] and "nothing was written" in errors[0]
    assert "Traceback" not in result.stderr
    assert not target.exists()
    assert not list(trained_run.dir.glob("**/.export-*"))

    with pytest.raises(ExportError, match="below --min-agreement"):
        export_run(trained_run.dir, quantize="int8", min_agreement=1.01)
    assert not target.exists()

    forced = export_run(trained_run.dir, quantize="int8", min_agreement=1.01, force=True)
    assert forced.path == target and forced.report["forced"] is True and forced.report["quantize"] == "int8"
    assert forced.report["agreement"] >= 0.5


def test_cli_predict_with_the_onnx_backend_gives_the_same_labels(trained_run) -> None:
    runner = CliRunner()
    export = runner.invoke(app, ["export", str(trained_run.dir), "--output", str(trained_run.dir / "served")])
    assert export.exit_code == 0, export.output
    assert "Agreement with PyTorch: 1.0000" in export.output

    torch_result = runner.invoke(app, ["predict", str(trained_run.dir), *TEXTS])
    onnx_result = runner.invoke(app, ["predict", str(trained_run.dir), *TEXTS, "--backend", "onnx"])
    assert torch_result.exit_code == 0 and onnx_result.exit_code == 0, onnx_result.output
    labels = [
        [json.loads(line)["label"] for line in r.stdout.strip().splitlines()] for r in (torch_result, onnx_result)
    ]
    assert labels[0] == labels[1] and len(labels[0]) == len(TEXTS)


def test_onnx_backend_without_an_export_is_a_clear_error(tiny_model: str, fast_overrides: dict) -> None:
    run = distiltune.train(None, {**fast_overrides, "train.max_steps": 1})
    with pytest.raises(RunError, match="no ONNX export found"):
        distiltune.load(run.dir, backend="onnx")
    with pytest.raises(ExportError, match="Unknown export format 'tflite'"):
        export_run(run.dir, format="tflite")


def test_lora_models_export_merged(tiny_model: str) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    base = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["q_lin", "v_lin"], init_lora_weights=False)).eval()
    merged = merged_for_export(lora)
    assert not hasattr(merged, "peft_config") and not any("lora_" in name for name, _ in merged.named_parameters())
    inputs = {"input_ids": torch.tensor([[2, 10, 11, 12, 3]]), "attention_mask": torch.ones(1, 5, dtype=torch.long)}
    with torch.no_grad():
        assert torch.allclose(lora(**inputs).logits, merged(**inputs).logits, atol=1e-5)


@pytest.mark.parametrize("architecture", ["distilbert", "bert", "roberta"])
def test_the_optimizer_fuses_attention_and_keeps_the_logits(architecture: str, tmp_path: Path) -> None:
    import torch

    from conftest import build_model, build_tokenizer
    from distiltune.export import OnnxSequenceClassifier, export_onnx, optimize_graph

    model, tokenizer = build_model(architecture).eval(), build_tokenizer(architecture)
    model.set_attn_implementation("sdpa")
    export_onnx(model, tokenizer, tmp_path / "model.onnx")
    assert model.config._attn_implementation == "sdpa", "tracing with eager attention must not change the model"
    fused = optimize_graph(tmp_path / "model.onnx", model.config)
    assert fused.get("Attention") == model.config.num_hidden_layers, fused
    assert fused.get("LayerNormalization", 0) > 0 and "SkipLayerNormalization" not in fused, fused

    # Padded rows of different lengths: the fused attention must honour the mask as the eager graph does.
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).logits
    onnx_logits = OnnxSequenceClassifier(tmp_path / "model.onnx", model.config)(**batch).logits
    assert torch.allclose(onnx_logits, expected, atol=1e-4)


def test_read_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path: Path) -> None:
    from distiltune.runs import read_jsonl, write_jsonl

    rows = [{"text": "an IMDb review\x85 with a NEL and a\u2028line separator"}, {"text": "second"}]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    assert read_jsonl(tmp_path / "rows.jsonl") == rows


def test_cpu_sessions_keep_residual_layer_norms_unfused(tmp_path: Path) -> None:
    """ONNX Runtime fuses Add + LayerNormalization into its slow SkipLayerNormalization at session creation
    unless the fusion is disabled by name; a renamed optimizer would silently bring the slow kernel back."""
    import onnx
    import onnxruntime as ort

    from conftest import build_model, build_tokenizer
    from distiltune.export import CPU_DISABLED_OPTIMIZERS, export_onnx, optimize_graph

    model, tokenizer = build_model("bert").eval(), build_tokenizer("bert")
    export_onnx(model, tokenizer, tmp_path / "model.onnx")
    optimize_graph(tmp_path / "model.onnx", model.config)

    def session_operators(disabled: list[str]) -> set[str]:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / f"session-{len(disabled)}.onnx")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        ort.InferenceSession(
            str(tmp_path / "model.onnx"), options, providers=["CPUExecutionProvider"], disabled_optimizers=disabled
        )
        return {node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node}

    assert "SkipLayerNormalization" in session_operators([]), "ORT no longer fuses this: the workaround can go"
    kept = session_operators(list(CPU_DISABLED_OPTIMIZERS))
    assert "SkipLayerNormalization" not in kept and "LayerNormalization" in kept


def test_the_onnx_classifier_creates_its_cpu_session_without_those_fusions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime as ort

    from conftest import build_model, build_tokenizer
    from distiltune.export import CPU_DISABLED_OPTIMIZERS, OnnxSequenceClassifier, export_onnx

    model, tokenizer = build_model("distilbert").eval(), build_tokenizer("distilbert")
    export_onnx(model, tokenizer, tmp_path / "model.onnx")
    created: list[dict] = []
    real_session = ort.InferenceSession

    def recording_session(*args: Any, **kwargs: Any) -> Any:
        created.append(kwargs)
        return real_session(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", recording_session)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    OnnxSequenceClassifier(tmp_path / "model.onnx", model.config)
    assert set(created[-1]["disabled_optimizers"]) == set(CPU_DISABLED_OPTIMIZERS)


def test_loading_an_export_with_the_slow_cpu_fusion_says_how_to_re_export(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from conftest import build_model, build_tokenizer
    from distiltune.export import OnnxSequenceClassifier, export_onnx

    model, tokenizer = build_model("distilbert").eval(), build_tokenizer("distilbert")
    export_onnx(model, tokenizer, tmp_path / "model.onnx")
    report = {"run_dir": "runs/old", "quantize": "int8", "fused_operators": {"Attention": 2}}
    (tmp_path / "export.json").write_text(json.dumps(report))
    with caplog.at_level("WARNING", logger="distiltune"):
        OnnxSequenceClassifier(tmp_path / "model.onnx", model.config)
    assert "SkipLayerNormalization" not in caplog.text

    report["fused_operators"]["SkipLayerNormalization"] = 4
    (tmp_path / "export.json").write_text(json.dumps(report))
    with caplog.at_level("WARNING", logger="distiltune"):
        OnnxSequenceClassifier(tmp_path / "model.onnx", model.config)
    assert "distiltune export runs/old --format onnx --quantize int8" in caplog.text


@pytest.mark.parametrize("architecture", ["distilbert", "xlnet"])
def test_int8_keeps_the_classification_head_in_float(architecture: str, tmp_path: Path) -> None:
    """DistilBERT's head is named in FLOAT_NODE_MARKERS, XLNet's (sequence_summary, logits_proj) is found by
    head_module_names; both are Gemm nodes, which the quantizer renames before it reads the exclusions."""
    import onnx

    from conftest import build_model, build_tokenizer
    from distiltune.export import export_onnx, quantize_int8
    from distiltune.modeling.heads import head_module_names

    model, tokenizer = build_model(architecture).eval(), build_tokenizer(architecture)
    export_onnx(model, tokenizer, tmp_path / "model.onnx")
    quantize_int8(tmp_path / "model.onnx", tmp_path / "int8.onnx", float_modules=head_module_names(model))
    nodes = onnx.load(str(tmp_path / "int8.onnx")).graph.node
    heads = [f"/{name}/" for name in head_module_names(model)]
    head_ops = {node.op_type for node in nodes if any(head in node.name for head in heads)}
    assert "MatMul" in head_ops and not any("Integer" in op or "Quant" in op for op in head_ops), head_ops
    assert any(node.op_type == "MatMulInteger" for node in nodes), "the encoder is not quantized"
