"""Every registered tuning method and the MLP head: what trains, what is saved, what reloads.

The matrix comes from the method registry: every registered method trains once on the first tiny architecture it
supports, plus the MLP-head variants. One module-scoped set of tiny runs is trained once; a single fresh Python
process then reloads all of them (and the merged LoRA model through plain transformers), so the suite pays for one
interpreter start-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import distiltune
from conftest import FIXTURES, build_model
from distiltune.errors import ConfigError
from distiltune.methods import get_method, method_names
from distiltune.methods.base import count_parameters
from distiltune.runs import read_jsonl

#: Options that keep a method's tiny run small or exercise an extra output; methods not named here run as they are.
METHOD_OPTIONS: dict[str, dict[str, object]] = {
    "lora": {"method.merge": True},
    "prompt": {"method.num_virtual_tokens": 4},
    "prefix": {"method.num_virtual_tokens": 4},
}
#: The MLP head on the methods that support it: name -> (architecture, overrides).
HEAD_VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "lora_mlp_mean": ("roberta", {"method.name": "lora", "model.head": "mlp", "model.pooling": "mean"}),
    "full_mlp_cls": ("bert", {"method.name": "full", "model.head": "mlp", "model.head_hidden_size": 16}),
    "head_mlp": ("distilbert", {"method.name": "head", "model.head": "mlp", "model.pooling": "mean"}),
}
ARCHITECTURE_PREFERENCE = ("distilbert", "bert", "roberta")


def first_supported_architecture(method: str, encoders: dict[str, Path]) -> str:
    """The first tiny encoder the method can run on (prefix tuning refuses DistilBERT, for one)."""
    from transformers import AutoConfig

    check = get_method(method).unsupported_reason
    for architecture in (a for a in ARCHITECTURE_PREFERENCE if a in encoders):
        if check is None or check(AutoConfig.from_pretrained(encoders[architecture])) is None:
            return architecture
    raise AssertionError(f"no tiny encoder supports {method}")


def variants(encoders: dict[str, Path]) -> dict[str, tuple[str, dict[str, object]]]:
    """name -> (architecture, overrides): every registered method, then the MLP-head variants."""
    out = {
        name: (first_supported_architecture(name, encoders), {"method.name": name, **METHOD_OPTIONS.get(name, {})})
        for name in method_names()
    }
    return {**out, **HEAD_VARIANTS}


RELOAD_SCRIPT = """
import json, sys
import numpy as np
import distiltune
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from distiltune.inference.batched import InferenceSettings, predict_logits
from distiltune.tasks.metrics import softmax

out = {}
for name, run_dir, texts in json.loads(sys.argv[1]):
    out[name] = distiltune.load(run_dir, precision="fp32").predict_proba(texts).tolist()
    merged = run_dir + "/model/merged"
    if name == "lora":
        # A plain transformers load: no distiltune, no peft.
        model = AutoModelForSequenceClassification.from_pretrained(merged)
        tokenizer = AutoTokenizer.from_pretrained(merged)
        settings = InferenceSettings(max_length=16)
        out["merged"] = softmax(predict_logits(model, tokenizer, texts, None, settings)).tolist()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def method_runs(tiny_encoders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, distiltune.Run]:
    output = tmp_path_factory.mktemp("method_runs")
    base = {
        "data.dataset": str(FIXTURES / "tiny.csv"),
        "data.text_column": "review",
        "data.label_column": "sentiment",
        "data.max_length": 16,
        "data.validation_fraction": 0.25,
        "train.epochs": 2,
        "train.batch_size": 4,
        "train.precision": "fp32",
        "train.logging_steps": 1,
        "run.output_dir": str(output),
    }
    runs = {}
    for name, (architecture, overrides) in variants(tiny_encoders).items():
        runs[name] = distiltune.train(None, {**base, "model.name": str(tiny_encoders[architecture]), **overrides})
    return runs


def _in_memory_predictions(run: distiltune.Run) -> tuple[list[str], np.ndarray]:
    """Texts and probabilities that training computed with the in-memory model (predictions.jsonl)."""
    rows = read_jsonl(run.dir / "predictions.jsonl")
    labels = list(rows[0]["probabilities"])
    return [row["text"] for row in rows], np.array([[row["probabilities"][label] for label in labels] for row in rows])


def test_every_method_reloads_in_a_fresh_process_and_reproduces_its_predictions(method_runs: dict) -> None:
    jobs = [(name, str(run.dir), _in_memory_predictions(run)[0]) for name, run in method_runs.items()]
    result = subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, json.dumps(jobs)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reloaded = json.loads(result.stdout.strip().splitlines()[-1])
    for name, run in method_runs.items():
        _, expected = _in_memory_predictions(run)
        # predictions.jsonl rounds to 6 decimals.
        assert np.allclose(reloaded[name], expected, atol=2e-6), name
    _, lora_expected = _in_memory_predictions(method_runs["lora"])
    assert np.allclose(reloaded["merged"], lora_expected, atol=1e-4)


def test_each_method_saves_its_own_files_and_records_its_costs(method_runs: dict) -> None:
    adapter = {"adapter_config.json", "adapter_model.safetensors", "config.json", "labels.json"}
    for name in ("lora", "prompt", "prefix", "lora_mlp_mean"):
        files = {p.name for p in (method_runs[name].dir / "model").iterdir()}
        assert adapter <= files and "model.safetensors" not in files, name
        assert not any(p.suffix in (".bin", ".pt", ".pth") for p in (method_runs[name].dir / "model").rglob("*"))
    assert (method_runs["lora_mlp_mean"].dir / "model" / "head_config.json").is_file()
    for name, run in method_runs.items():
        metrics = json.loads((run.dir / "metrics.json").read_text())
        trains = get_method(run.config.method.name).trains
        for key in ("total_params", "train_seconds", "peak_memory_mb"):
            assert metrics[key] > 0, (name, key)
        assert metrics["peak_memory_kind"] == "rss"
        if trains:
            assert metrics["trainable_params"] > 0 and metrics["train_samples_per_second"] > 0, name
        else:  # the untuned baseline evaluates the encoder as loaded
            assert metrics["trainable_params"] == 0 and metrics["train_samples_per_second"] is None, name
        assert metrics["trainable_params"] <= metrics["total_params"]
    # train.lr was unset, so each method ran at its own default and the resolved config records it.
    lrs = {name: run.config.train.lr for name, run in method_runs.items()}
    assert lrs["lora"] == 2e-3 and lrs["prompt"] == 1e-2 and lrs["prefix"] == 1e-2 and lrs["head"] == 1e-3


def test_head_only_leaves_the_encoder_bit_identical(method_runs: dict, tiny_encoders: dict[str, Path]) -> None:
    from safetensors.torch import load_file

    pretrained = load_file(tiny_encoders["distilbert"] / "model.safetensors")
    trained = load_file(method_runs["head"].dir / "model" / "model.safetensors")
    encoder_keys = [key for key in pretrained if key.startswith("distilbert.")]
    assert encoder_keys and all(torch.equal(pretrained[key], trained[key]) for key in encoder_keys)
    assert not torch.equal(pretrained["classifier.weight"], trained["classifier.weight"])
    assert not torch.equal(pretrained["pre_classifier.weight"], trained["pre_classifier.weight"])

    mlp = load_file(method_runs["head_mlp"].dir / "model" / "model.safetensors")
    encoder = {key.removeprefix("encoder."): value for key, value in mlp.items() if key.startswith("encoder.")}
    assert encoder and all(torch.equal(pretrained[f"distilbert.{key}"], value) for key, value in encoder.items())


def _trainable_names(model: torch.nn.Module) -> list[str]:
    return [name for name, parameter in model.named_parameters() if parameter.requires_grad]


def test_prompt_trains_only_the_prompt_and_the_whole_head() -> None:
    from distiltune.methods.prompt import PromptConfig

    model = get_method("prompt").apply(build_model("distilbert"), PromptConfig(num_virtual_tokens=4, init="random"))
    names = _trainable_names(model)
    assert all("prompt_encoder" in name or "modules_to_save" in name for name in names), names
    # DistilBERT's randomly initialised pre_classifier must train (peft alone only adds `classifier`).
    assert any("pre_classifier.modules_to_save" in name for name in names)
    assert any(name.startswith("prompt_encoder") for name in names)


def test_lora_trains_under_five_percent_of_full_and_keeps_the_head_trainable() -> None:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    from distiltune.methods.lora import LoraMethodConfig

    # Big enough that the ratio means something (the tiny fixtures are mostly head), small enough to build fast.
    config = DistilBertConfig(vocab_size=1000, dim=256, n_layers=6, n_heads=4, hidden_dim=1024, num_labels=2)
    torch.manual_seed(0)
    full = count_parameters(DistilBertForSequenceClassification(config))["trainable_params"]
    lora = get_method("lora").apply(DistilBertForSequenceClassification(config), LoraMethodConfig())
    names = _trainable_names(lora)
    assert count_parameters(lora)["trainable_params"] < 0.05 * full
    assert any("q_lin.lora_A" in name for name in names) and any("v_lin.lora_B" in name for name in names)
    assert any("pre_classifier.modules_to_save" in name for name in names)


def test_prefix_refuses_encoders_without_past_key_values_and_mlp_head_needs_a_compatible_method(
    tiny_encoders: dict[str, Path], tmp_path: Path
) -> None:
    from distiltune.methods.prefix import PrefixConfig

    with pytest.raises(ConfigError, match="(?i)prefix.*past_key_values.*distilbert.*BERT, RoBERTa"):
        get_method("prefix").apply(build_model("distilbert"), PrefixConfig())
    with pytest.raises(ConfigError, match="model.head=mlp does not work with method 'prompt'"):
        distiltune.load_config(None, {"method.name": "prompt", "model.head": "mlp"})
    with pytest.raises(ConfigError, match="method.r must be >= 1"):
        distiltune.load_config(None, {"method.name": "lora", "method.r": 0})


def test_lora_without_a_known_architecture_asks_for_target_modules() -> None:
    from distiltune.methods.lora import LoraMethodConfig

    model = build_model("bert")
    model.config.model_type = "mystery"
    with pytest.raises(ConfigError, match="method.target_modules"):
        get_method("lora").apply(model, LoraMethodConfig())
    with pytest.raises(ConfigError, match="peft cannot apply"):
        get_method("lora").apply(build_model("bert"), LoraMethodConfig(target_modules=["nope"]))


def test_registry_lists_the_methods_and_their_default_learning_rates() -> None:
    assert {"full", "lora", "prompt", "prefix", "head"} <= set(method_names())
    rates = {name: get_method(name).config_cls.default_lr for name in ("full", "lora", "prompt", "prefix", "head")}
    assert rates["full"] < rates["lora"] < rates["prompt"] and rates["head"] == 1e-3


def test_incomplete_adapter_run_is_refused_before_loading(method_runs: dict, tmp_path: Path) -> None:
    import shutil

    from distiltune.errors import RunError

    copy = tmp_path / "broken"
    shutil.copytree(method_runs["prompt"].dir, copy)
    (copy / "model" / "adapter_config.json").unlink()
    with pytest.raises(RunError, match="missing adapter_config.json"):
        distiltune.load(copy)


@pytest.mark.parametrize("architecture", ["bert", "roberta"])
def test_prefix_reaches_the_attention_of_encoders_that_take_past_key_values(architecture: str) -> None:
    from distiltune.methods.prefix import PrefixConfig

    model = get_method("prefix").apply(build_model(architecture), PrefixConfig(num_virtual_tokens=4)).eval()
    inputs = {"input_ids": torch.tensor([[2, 7, 9, 11, 3]]), "attention_mask": torch.ones(1, 5, dtype=torch.long)}
    with torch.no_grad():
        before = model(**inputs).logits
        model.prompt_encoder["default"].embedding.weight.mul_(5.0)
        after = model(**inputs).logits
    assert not torch.allclose(before, after), "the prefixes do not change the output"
    names = _trainable_names(model)
    assert all("prompt_encoder" in name or "modules_to_save" in name for name in names), names


def test_cli_flags_select_the_method_head_pooling_and_merge(tiny_model: str, tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from distiltune.cli import app

    # These arguments are all CLI flags, with no --set.
    args = ["train", "--model", tiny_model, "--dataset", str(FIXTURES / "tiny.csv"), "--text-column", "review"]
    args += ["--label-column", "sentiment", "--max-length", "16", "--epochs", "1", "--output-dir", str(tmp_path)]
    args += ["--method", "lora", "--merge", "--head", "mlp", "--pooling", "mean", "--name", "cli"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((tmp_path / "cli" / "config.yaml").read_text())
    assert config["method"]["name"] == "lora" and config["method"]["merge"] is True
    assert config["model"]["head"] == "mlp" and config["model"]["pooling"] == "mean"
    merged = tmp_path / "cli" / "model" / "merged"
    assert (merged / "model.safetensors").is_file() and (merged / "head_config.json").is_file()


def test_tfidf_fits_and_applies_a_temperature_and_a_threshold_too(tmp_path: Path) -> None:
    """Calibration works on logits, whoever made them: a method outside the Trainer saves and applies it alike."""
    run = distiltune.train(
        None,
        {
            "method.name": "tfidf",
            "data.dataset": str(FIXTURES / "tiny.csv"),
            "data.text_column": "review",
            "data.label_column": "sentiment",
            "data.validation_fraction": 0.25,
            "train.calibrate": "temperature",
            "train.tune_threshold": True,
            "run.output_dir": str(tmp_path / "runs"),
        },
    )
    saved = json.loads((run.dir / "model" / "calibration.json").read_text())
    assert saved["temperature"] == run.metrics["temperature"]["value"]
    assert saved["threshold"] == run.metrics["threshold"]["value"]
    assert "before_calibration" in run.metrics["validation"] and "before_threshold" in run.metrics["validation"]
    classifier = run.load()
    texts = ["great fun film", "awful boring plot", "the movie"]
    logits = classifier.predict_logits(texts)
    probabilities = classifier.predict_proba(texts)
    scaled = np.exp(logits / saved["temperature"])
    np.testing.assert_allclose(probabilities, scaled / scaled.sum(axis=1, keepdims=True), atol=1e-9)
    label_id = saved["threshold_label_id"]
    expected = np.where(probabilities[:, label_id] >= saved["threshold"], label_id, 1 - label_id)
    assert [r["label"] for r in classifier.predict(texts)] == [classifier.label_names[i] for i in expected]
