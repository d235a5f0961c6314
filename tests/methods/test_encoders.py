"""Encoders unlike BERT: XLNet (left padding, <sep> <cls> at the end, no position limit, bare-Parameter attention),
DeBERTa-v2/v3 and DeBERTa v1 (disentangled relative attention).

Every method that supports them trains on each, saves, reloads in one fresh process with the same predictions and
exports to ONNX; a method that does not support one refuses it before a run directory exists, in one line.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import distiltune
from conftest import FIXTURES, build_model, build_tokenizer
from distiltune.errors import ConfigError
from distiltune.inference.batched import InferenceSettings, predict_logits
from distiltune.methods import get_method
from distiltune.runs import read_jsonl

#: Texts of different lengths, so every batch below is padded (on the left for XLNet).
TEXTS = [
    "the movie was great and fun",
    "boring awful plot",
    "love it",
    "hate this very dull film and the story was bad",
]

LORA = {"method.name": "lora"}
PROMPT = {"method.name": "prompt", "method.num_virtual_tokens": 4}
MLP_CLS = {"model.head": "mlp", "model.pooling": "cls", "model.head_hidden_size": 16}
MLP_MEAN = {"model.head": "mlp", "model.pooling": "mean"}
#: name -> (architecture, overrides, export): full, lora, prompt and head on XLNet and DeBERTa-v2/v3, each with the
#: MLP head too (both poolings); untuned on XLNet (it saves and loads as full does); DeBERTa v1 (a fused in_proj for
#: LoRA) with lora and prompt (full and head save and load as on v2). prefix refuses all three and prompt refuses
#: XLNet (tests below); tfidf never loads an encoder. ``export`` is "fp32", "int8" (fp32 and int8) or None where
#: another run exports the same kind of graph on that encoder family (untuned is head's; the merged MLP head, prompt
#: on DeBERTa v1 as on v2). "-merged" also writes model/merged/.
MATRIX: dict[str, tuple[str, dict[str, object], str | None]] = {
    "xlnet-full-mlp-cls": ("xlnet", {"method.name": "full", **MLP_CLS}, "fp32"),
    "xlnet-lora-merged": ("xlnet", {**LORA, "method.merge": True}, "fp32"),
    "xlnet-lora-mlp-mean": ("xlnet", {**LORA, **MLP_MEAN}, None),
    "xlnet-head": ("xlnet", {"method.name": "head"}, "int8"),
    "xlnet-untuned": ("xlnet", {"method.name": "untuned"}, None),
    "deberta-v2-full": ("deberta-v2", {"method.name": "full"}, "fp32"),
    "deberta-v2-lora-mlp-cls": ("deberta-v2", {**LORA, **MLP_CLS}, "int8"),
    "deberta-v2-prompt": ("deberta-v2", PROMPT, "fp32"),
    "deberta-v2-head-mlp-mean": ("deberta-v2", {"method.name": "head", **MLP_MEAN}, None),
    "deberta-lora": ("deberta", LORA, "int8"),
    "deberta-prompt": ("deberta", PROMPT, None),
}

RELOAD_SCRIPT = """
import json, sys
import distiltune
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from distiltune.tasks.metrics import softmax
from distiltune.inference.batched import InferenceSettings, predict_logits

out = {}
for name, run_dir, texts in json.loads(sys.argv[1]):
    out[name] = distiltune.load(run_dir, precision="fp32").predict_proba(texts).tolist()
    if name.endswith("-merged"):  # a plain transformers load of model/merged: no distiltune, no peft
        merged = run_dir + "/model/merged"
        model = AutoModelForSequenceClassification.from_pretrained(merged)
        tokenizer = AutoTokenizer.from_pretrained(merged)
        logits = predict_logits(model, tokenizer, texts, None, InferenceSettings(max_length=512))
        out[name + "/plain"] = softmax(logits).tolist()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def encoder_runs(
    tiny_encoders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, distiltune.Run]:
    output = tmp_path_factory.mktemp("encoder_runs")
    base = {
        "data.dataset": str(FIXTURES / "tiny.csv"),
        "data.text_column": "review",
        "data.label_column": "sentiment",
        "data.max_length": 16,
        "data.validation_fraction": 0.25,
        "train.epochs": 1,
        "train.batch_size": 6,
        "train.precision": "fp32",
        "run.output_dir": str(output),
    }
    with pytest.MonkeyPatch.context() as patch:
        # Drawing the run's plots is half of a tiny run's time and nothing here looks at them (test_train does).
        patch.setattr("distiltune.plots.plot_run", lambda run_dir: None)
        return {
            name: distiltune.train(None, {**base, "model.name": str(tiny_encoders[arch]), "run.name": name, **over})
            for name, (arch, over, _) in MATRIX.items()
        }


def _in_memory_predictions(run: distiltune.Run) -> tuple[list[str], np.ndarray]:
    rows = read_jsonl(run.dir / "predictions.jsonl")
    labels = list(rows[0]["probabilities"])
    return [row["text"] for row in rows], np.array([[row["probabilities"][label] for label in labels] for row in rows])


def test_every_supported_method_reloads_on_each_encoder_in_a_fresh_process(encoder_runs: dict) -> None:
    jobs = [(name, str(run.dir), _in_memory_predictions(run)[0] + TEXTS) for name, run in encoder_runs.items()]
    result = subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, json.dumps(jobs)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reloaded = json.loads(result.stdout.strip().splitlines()[-1])
    for name, run in encoder_runs.items():
        texts, expected = _in_memory_predictions(run)
        # The evaluation rows (all of one length) were scored unpadded in training; here they share batches with
        # longer and shorter TEXTS, so they are padded: the same probabilities also prove padding changes nothing.
        # predictions.jsonl rounds to 6 decimals.
        assert np.allclose(np.array(reloaded[name])[: len(texts)], expected, atol=2e-6), name
    merged = np.array(reloaded["xlnet-lora-merged/plain"])
    assert np.allclose(merged, reloaded["xlnet-lora-merged"], atol=1e-4)


def test_every_supported_method_exports_each_encoder_to_onnx(
    encoder_runs: dict, caplog: pytest.LogCaptureFixture
) -> None:
    import onnx

    from distiltune.export import export_run

    for name, (_, _, export) in MATRIX.items():
        if export is None:
            continue
        run = encoder_runs[name]
        # The default parity bar (99% label agreement on the evaluation rows) must hold, or export_run raises.
        result = export_run(run.dir)
        assert result.report["max_probability_difference"] < 1e-4, name
        if export == "int8":
            # A tiny random model scores most rows near 0.5, where int8 rounding may flip a label: compare the
            # probabilities instead of the labels.
            quantized = export_run(run.dir, quantize="int8", min_agreement=0.0)
            assert quantized.report["max_probability_difference"] < 0.05, name
        # Padded, mixed-length batches through the whole serving path (int8 served when there is one).
        onnx_probabilities = distiltune.load(run.dir, backend="onnx").predict_proba(TEXTS)
        torch_probabilities = run.load(precision="fp32").predict_proba(TEXTS)
        assert np.allclose(onnx_probabilities, torch_probabilities, atol=1e-4 if export == "fp32" else 0.05), name
        assert np.ptp(torch_probabilities[:, 0]) > 1e-3, f"{name}: the same prediction for every text proves little"

    # ONNX Runtime's shape inference warns once per DeBERTa layer about nothing a user can act on; it stays quiet.
    assert not [record for record in caplog.records if record.name == "symbolic_shape_infer"]

    # The head stays float in the int8 graph: XLNet's own (sequence_summary + logits_proj) and our MLP head.
    for name, head in (
        ("xlnet-head", ("/logits_proj/", "/sequence_summary/")),
        ("deberta-v2-lora-mlp-cls", ("/head/",)),
    ):
        nodes = onnx.load(str(encoder_runs[name].dir / "export" / "onnx-int8" / "model.onnx")).graph.node
        head_ops = {node.op_type for node in nodes if any(marker in node.name for marker in head)}
        assert "MatMul" in head_ops and not any("Integer" in op or "Quant" in op for op in head_ops), head_ops
        assert any(node.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for node in nodes), name


@pytest.mark.parametrize(
    ("method", "architecture", "instead"),
    [
        ("prefix", "xlnet", "--method prompt or lora"),
        ("prefix", "deberta-v2", "--method prompt or lora"),
        ("prefix", "deberta", "--method prompt or lora"),
        ("prompt", "xlnet", "--method lora, full or head"),
    ],
)
def test_an_unsupported_method_is_refused_in_one_line_before_the_run_starts(
    method: str, architecture: str, instead: str, tiny_encoders: dict[str, Path], tmp_path: Path
) -> None:
    # The CLI prints a ConfigError as its one line (str) with exit code 2: tests/test_bad_input.py.
    overrides = {"model.name": str(tiny_encoders[architecture]), "method.name": method}
    overrides |= {"data.dataset": str(FIXTURES / "tiny.csv"), "run.output_dir": str(tmp_path / "runs")}
    overrides |= {"data.text_column": "review", "data.label_column": "sentiment"}
    with pytest.raises(ConfigError) as refused:
        distiltune.train(None, overrides)
    message = str(refused.value)
    assert "\n" not in message and re.search(f"(?i){method}.*'{architecture}'", message), message
    assert instead in message
    assert not (tmp_path / "runs").exists(), "the refusal came after the run had started"
    # Applied to a loaded model directly (library use, remote code), the method refuses it the same way.
    from distiltune.methods.prefix import PrefixConfig
    from distiltune.methods.prompt import PromptConfig

    options = PrefixConfig() if method == "prefix" else PromptConfig(init="random")
    with pytest.raises(ConfigError, match=f"(?i){method}.*'{architecture}'"):
        get_method(method).apply(build_model(architecture), options)


def test_support_is_known_from_the_config_alone(tiny_encoders: dict[str, Path]) -> None:
    from distiltune.config import ModelConfig
    from distiltune.methods.lora import LoraMethodConfig
    from distiltune.methods.prefix import PrefixConfig
    from distiltune.methods.prompt import PromptConfig
    from distiltune.methods.support import unsupported_reason

    def reason(method_config: object, architecture: str) -> str | None:
        return unsupported_reason(method_config, ModelConfig(name=str(tiny_encoders[architecture])))

    for architecture in ("xlnet", "deberta-v2", "deberta", "distilbert"):
        assert "past_key_values" in reason(PrefixConfig(), architecture), architecture
        assert reason(LoraMethodConfig(), architecture) is None, architecture
    assert reason(PrefixConfig(), "bert") is None and reason(PrefixConfig(), "roberta") is None
    assert "pads on the left" in reason(PromptConfig(), "xlnet") and reason(PromptConfig(), "deberta-v2") is None
    for name in ("full", "head", "untuned", "tfidf"):
        assert reason(get_method(name).config_cls(), "xlnet") is None, name

    config = build_model("bert").config
    config.model_type = "mystery"
    lora = get_method("lora")
    assert "--set method.target_modules" in lora.unsupported_reason(config, LoraMethodConfig())
    assert lora.unsupported_reason(config, LoraMethodConfig(target_modules=["query"])) is None


@pytest.mark.parametrize(
    ("architecture", "adapted", "head"),
    [
        ("xlnet", "ff.layer_1", ["sequence_summary", "logits_proj"]),
        ("deberta-v2", "attention.self.query_proj", ["pooler", "classifier"]),
        ("deberta", "attention.self.in_proj", ["pooler", "classifier"]),
    ],
)
def test_lora_adapts_each_encoder_and_trains_its_whole_head(architecture: str, adapted: str, head: list[str]) -> None:
    from distiltune.methods.lora import LoraMethodConfig
    from distiltune.modeling.heads import head_module_names

    assert head_module_names(build_model(architecture)) == head
    model = get_method("lora").apply(build_model(architecture), LoraMethodConfig(r=2))
    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    assert any(f"{adapted}.lora_A" in name for name in trainable), trainable
    for module in head:
        assert any(f".{module}.modules_to_save." in name for name in trainable), (module, trainable)


@pytest.mark.parametrize("architecture", ["xlnet", "deberta-v2"])
@pytest.mark.parametrize("head", ["auto", "cls", "mean"])
def test_predictions_do_not_depend_on_padding(architecture: str, head: str) -> None:
    """A text scores the same alone and in a padded batch. XLNet pads on the left and puts <cls> last, so ``cls``
    pooling must read the last real token, not position 0 (a pad token whenever the row is padded)."""
    from distiltune.config import ModelConfig
    from distiltune.modeling.heads import attach_head

    model_config = ModelConfig(head="auto" if head == "auto" else "mlp", pooling="mean" if head == "mean" else "cls")
    model = attach_head(build_model(architecture), model_config).eval()
    tokenizer = build_tokenizer(architecture)
    assert tokenizer.padding_side == ("left" if architecture == "xlnet" else "right")
    batched = InferenceSettings(max_length=512, batch_size=len(TEXTS), sort_by_length=False)
    together = predict_logits(model, tokenizer, TEXTS, None, batched)
    alone = np.concatenate(
        [predict_logits(model, tokenizer, [text], None, InferenceSettings(max_length=512)) for text in TEXTS]
    )
    assert np.allclose(together, alone, atol=1e-5), np.abs(together - alone).max()


def test_cls_pooling_reads_xlnets_last_token_and_berts_first() -> None:
    from distiltune.modeling.heads import pool, summary_position

    hidden = torch.arange(2 * 4, dtype=torch.float32).reshape(2, 4, 1)
    left_padded = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    right_padded = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    assert pool(hidden, left_padded, "cls", "last").flatten().tolist() == [3.0, 7.0]
    assert pool(hidden, right_padded, "cls", "last").flatten().tolist() == [1.0, 7.0]
    assert pool(hidden, right_padded, "cls").flatten().tolist() == [0.0, 4.0]
    assert summary_position(build_model("xlnet").config) == "last"
    assert summary_position(build_model("deberta-v2").config) == "first"


def test_xlnet_has_no_position_limit_of_its_own() -> None:
    from distiltune.modeling import model_max_length

    # XLNet reports max_position_embeddings -1 and its tokenizer no limit either: the default applies.
    assert model_max_length(build_model("xlnet").config, build_tokenizer("xlnet")) == 512
    assert model_max_length(build_model("deberta-v2").config, build_tokenizer("deberta-v2")) == 64
