"""Speed features: precision choice per hardware, length-sorted inference order, the tokenization cache, and
the switches that turn each feature off (recorded in config.yaml and env.json)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import distiltune
from conftest import build_model, build_tokenizer
from distiltune import hardware
from distiltune.config import TrainConfig
from distiltune.data.cache import cache_key, cached_tokenize
from distiltune.errors import ConfigError
from distiltune.hardware import choose_precision
from distiltune.inference.batched import (
    InferenceBatching,
    InferenceSettings,
    predict_logits,
    resolve_eval_batch_size,
    resolve_inference_batching,
)
from distiltune.training.speed import default_dataloader_workers, plan_speed

# --- precision --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device_type", "capability", "flags", "expected"),
    [
        ("cuda", (9, 0), (), "bf16"),  # Hopper
        ("cuda", (8, 0), (), "bf16"),  # Ampere: first with bf16 tensor cores
        ("cuda", (7, 5), (), "fp16"),  # Turing: fp16 with loss scaling
        ("cuda", (6, 0), (), "fp16"),
        ("cpu", None, ("avx2", "avx512f", "avx512_bf16"), "bf16"),
        ("cpu", None, ("avx2", "amx_bf16", "amx_tile"), "bf16"),
        ("cpu", None, ("avx2", "avx512f", "avx512_vnni"), "fp32"),  # AVX-512 without BF16: emulated, slow
        ("cpu", None, (), "fp32"),
        ("mps", None, (), "fp32"),
    ],
)
def test_auto_precision_follows_the_hardware(device_type, capability, flags, expected) -> None:
    assert choose_precision("auto", device_type, cuda_capability=capability, cpu_flags=flags) == expected


@pytest.mark.parametrize(("speedup", "expected"), [(4.2, "bf16"), (1.3, "bf16"), (1.1, "fp32"), (0.6, "fp32")])
def test_cpu_bf16_also_needs_a_measured_speedup(speedup: float, expected: str) -> None:
    calls: list[int] = []

    def measure() -> float:
        calls.append(1)
        return speedup

    flags = ("avx512f", "avx512_bf16")
    assert choose_precision("auto", "cpu", cpu_flags=flags, cpu_bf16_speedup=measure) == expected
    # No measurement where it cannot matter: no bf16 flags, or an explicit precision.
    assert choose_precision("auto", "cpu", cpu_flags=("avx2",), cpu_bf16_speedup=measure) == "fp32"
    assert choose_precision("bf16", "cpu", cpu_flags=flags, cpu_bf16_speedup=measure) == "bf16"
    assert len(calls) == 1


def test_the_bf16_measurement_times_real_matmuls_once_per_process() -> None:
    first = hardware.cpu_bf16_speedup(size=64, repeats=2)
    assert math.isfinite(first) and first > 0
    assert hardware.cpu_bf16_speedup(size=64, repeats=2) is first  # cached: no second timing in the process


def test_explicit_precision_wins_and_fp16_needs_a_gpu() -> None:
    assert choose_precision("fp32", "cpu", cpu_flags=("avx512_bf16",)) == "fp32"
    assert choose_precision("bf16", "cpu") == "bf16"
    assert choose_precision("fp16", "cuda", cuda_capability=(9, 0)) == "fp16"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        choose_precision("fp16", "cpu")


def test_plan_reads_the_hardware_and_records_every_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    monkeypatch.setattr(hardware, "cpu_bf16_speedup", lambda: 0.6)
    assert plan_speed(TrainConfig(), "cpu").precision == "fp32"  # bf16 flags, but bf16 measured slower
    monkeypatch.setattr(hardware, "cpu_bf16_speedup", lambda: 2.3)
    plan = plan_speed(TrainConfig(), "cpu")
    assert plan.precision == "bf16" and plan.cpu_bf16_speedup == 2.3
    assert plan.dynamic_padding and plan.group_by_length and plan.sort_by_length and plan.length_group_batches == 4
    assert plan.cache_tokenized and plan.attn_implementation is None and plan.optimizer == "adamw_torch_fused"
    assert plan.dataloader_workers == 0 and not plan.pin_memory and not plan.compile and not plan.async_steps
    assert plan.eval_batch_size == 8  # small CPU batches keep the attention scores in cache
    assert (plan.inference_batch_size, plan.inference_batch_tokens) == (64, 2048)

    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2"}))
    off = TrainConfig(
        dynamic_padding=False,
        group_by_length=False,
        sort_by_length=False,
        cache_tokenized=False,
        sdpa=False,
        fused_optimizer=False,
        compile=True,
        async_steps=False,
        dataloader_workers=3,
        eval_batch_size=48,
    )
    plan = plan_speed(off, "cpu")
    assert plan.precision == "fp32" and plan.cpu_bf16_speedup is None
    assert not (plan.dynamic_padding or plan.group_by_length or plan.sort_by_length or plan.cache_tokenized)
    assert plan.length_group_batches is None  # no grouping, nothing to size
    assert plan.attn_implementation == "eager" and plan.optimizer == "adamw_torch" and plan.compile
    assert plan.dataloader_workers == 3 and plan.eval_batch_size == 48 and not plan.async_steps
    assert (plan.inference_batch_size, plan.inference_batch_tokens) == (48, None)  # a set size is taken as is


def test_inference_batch_size_defaults_per_device() -> None:
    assert resolve_eval_batch_size(None, "cpu") == 8 and resolve_eval_batch_size(None, "cuda") == 64
    assert resolve_eval_batch_size(48, "cpu") == 48


def test_inference_batching_defaults_per_device_and_backend() -> None:
    assert resolve_inference_batching(None, None, "cpu") == InferenceBatching(64, 2048)
    assert resolve_inference_batching(None, None, "cpu", "onnx") == InferenceBatching(64, 512)
    assert resolve_inference_batching(None, None, "cuda") == InferenceBatching(64, None)
    assert resolve_inference_batching(16, None, "cpu") == InferenceBatching(16, None)
    assert resolve_inference_batching(16, 1000, "cpu") == InferenceBatching(16, 1000)
    assert resolve_inference_batching(None, 1000, "cuda") == InferenceBatching(64, 1000)
    assert resolve_inference_batching(None, 0, "cpu") == InferenceBatching(8, None)  # 0: budget off


def test_negative_token_budget_is_a_config_error() -> None:
    from distiltune.config import Config
    from distiltune.errors import ConfigError

    config = Config()
    config.train.eval_batch_tokens = -1
    with pytest.raises(ConfigError, match="train.eval_batch_tokens"):
        config.validate()


def test_loader_workers_only_where_they_measured_faster() -> None:
    # GPU: workers won at 768 rows per batch and lost at 32 (training_mfu_h200 results); the CPU keeps its cores.
    assert default_dataloader_workers("cuda", batch_size=768, cpu_count=16) == 4
    assert default_dataloader_workers("cuda", batch_size=1024, cpu_count=2) == 1
    assert default_dataloader_workers("cuda", batch_size=32, cpu_count=16) == 0
    assert default_dataloader_workers("cpu", batch_size=1024, cpu_count=16) == 0
    gpu = plan_speed(TrainConfig(precision="bf16", batch_size=32), "cuda")  # explicit precision: no GPU needed
    assert gpu.dataloader_workers == 0 and gpu.pin_memory and not gpu.async_steps
    big = plan_speed(TrainConfig(precision="bf16", batch_size=768), "cuda")
    assert big.dataloader_workers == default_dataloader_workers("cuda", batch_size=768)
    assert gpu.pad_to_multiple_of == 8
    assert gpu.eval_batch_size == 64 and gpu.inference_batch_tokens is None
    assert plan_speed(TrainConfig(precision="fp32", dataloader_workers=2), "cuda").dataloader_workers == 2


# --- length-sorted inference -----------------------------------------------------------------------

TEXTS = [
    "great",
    "the movie was great and fun and wonderful and the acting was great",
    "boring awful plot",
    "love it",
    "hate this very dull film with a boring plot and poor acting",
    "the acting",
    "a",
]


class ShapeRecorder(torch.nn.Module):
    """Wraps a model and records the padded shape of every batch it sees."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.config = model.config
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, **batch: torch.Tensor):
        self.shapes.append(tuple(batch["input_ids"].shape))
        return self.model(**batch)


def test_length_sorted_prediction_returns_input_order_with_less_padding() -> None:
    tokenizer, model = build_tokenizer("distilbert"), build_model("distilbert").eval()
    one_by_one = np.concatenate(
        [predict_logits(model, tokenizer, [text], None, InferenceSettings(max_length=32)) for text in TEXTS]
    )
    sorted_model, unsorted_model = ShapeRecorder(model), ShapeRecorder(model)
    sorted_logits = predict_logits(
        sorted_model, tokenizer, TEXTS, None, InferenceSettings(max_length=32, batch_size=2)
    )
    unsorted_logits = predict_logits(
        unsorted_model, tokenizer, TEXTS, None, InferenceSettings(max_length=32, batch_size=2, sort_by_length=False)
    )
    assert np.allclose(sorted_logits, one_by_one, atol=1e-5)
    assert np.allclose(unsorted_logits, one_by_one, atol=1e-5)
    padded_tokens = [sum(rows * length for rows, length in m.shapes) for m in (sorted_model, unsorted_model)]
    assert padded_tokens[0] < padded_tokens[1]

    fixed = ShapeRecorder(model)
    fixed_logits = predict_logits(
        fixed, tokenizer, TEXTS, None, InferenceSettings(max_length=32, batch_size=4, dynamic_padding=False)
    )
    assert {length for _, length in fixed.shapes} == {32}
    assert np.allclose(fixed_logits, one_by_one, atol=1e-5)


def test_token_budget_caps_padded_batch_size_and_keeps_input_order() -> None:
    tokenizer, model = build_tokenizer("distilbert"), build_model("distilbert").eval()
    texts = TEXTS * 3
    one_by_one = np.concatenate(
        [predict_logits(model, tokenizer, [text], None, InferenceSettings(max_length=32)) for text in texts]
    )
    lengths = sorted(len(ids) for ids in tokenizer(texts, truncation=True, max_length=32)["input_ids"])
    budget = 2 * lengths[-1]  # the longest rows go two at a time, the shortest many at a time
    recorder = ShapeRecorder(model)
    logits = predict_logits(
        recorder, tokenizer, texts, None, InferenceSettings(max_length=32, batch_size=8, max_batch_tokens=budget)
    )
    assert np.allclose(logits, one_by_one, atol=1e-5)
    assert sum(rows for rows, _ in recorder.shapes) == len(texts)
    assert all(rows <= 8 and rows * length <= budget for rows, length in recorder.shapes)
    assert recorder.shapes[0][0] == 8 and recorder.shapes[-1][0] <= 2

    lone = ShapeRecorder(model)  # a row longer than the budget still runs, alone
    predict_logits(lone, tokenizer, texts, None, InferenceSettings(max_length=32, batch_size=8, max_batch_tokens=1))
    assert [rows for rows, _ in lone.shapes] == [1] * len(texts)


# --- tokenization cache ----------------------------------------------------------------------------


def test_cache_hits_when_unchanged_and_misses_when_tokenizer_length_or_data_change(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": TEXTS, "label": [1, 1, 0, 1, 0, 0, 1]})
    tokenizer = build_tokenizer("distilbert")

    first, hit = cached_tokenize(frame, tokenizer, 16, cache_dir=tmp_path)
    assert not hit
    again, hit = cached_tokenize(frame, tokenizer, 16, cache_dir=tmp_path)
    assert hit and again["input_ids"] == first["input_ids"] and again["labels"] == first["labels"]

    _, hit = cached_tokenize(frame, tokenizer, 8, cache_dir=tmp_path)
    assert not hit, "a new max_length must not reuse ids truncated at another length"

    changed_tokenizer = build_tokenizer("distilbert")
    changed_tokenizer.add_tokens(["with"])  # same class, one more word: "with" was split into pieces before
    assert cache_key(frame, changed_tokenizer, 16) != cache_key(frame, tokenizer, 16)
    redone, hit = cached_tokenize(frame, changed_tokenizer, 16, cache_dir=tmp_path)
    assert not hit and redone["input_ids"] != first["input_ids"]

    edited = frame.copy()
    edited.loc[0, "text"] = "awful"
    _, hit = cached_tokenize(edited, tokenizer, 16, cache_dir=tmp_path)
    assert not hit
    relabelled = frame.assign(label=1 - frame["label"])
    _, hit = cached_tokenize(relabelled, tokenizer, 16, cache_dir=tmp_path)
    assert not hit
    assert not list(tmp_path.glob(".tmp-*")), "staging folders are renamed into place, never left behind"


def test_training_records_its_speed_features_and_reuses_the_token_cache(
    fast_overrides: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import TrainerCallback

    class ArgsRecorder(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
            self.args = args
            self.sampler = kwargs["train_dataloader"].batch_sampler.sampler

    monkeypatch.setenv("DISTILTUNE_CACHE_DIR", str(tmp_path / "cache"))  # empty: other tests share the session one
    recorder = ArgsRecorder()
    opted_in = {**fast_overrides, "train.length_group_batches": 2, "train.async_steps": True}  # async is opt-in
    first = distiltune.train(None, opted_in, callbacks=[recorder])
    speed = json.loads((first.dir / "env.json").read_text())["speed"]
    assert speed["dynamic_padding"] and speed["group_by_length"] and speed["cache_tokenized"] and speed["async_steps"]
    # The Trainer gets what the plan says: no per-step loss check, a length-grouped sampler, fused AdamW.
    assert recorder.args.logging_nan_inf_filter is False
    assert recorder.args.train_sampling_strategy == "group_by_length"
    assert speed["length_group_batches"] == 2 and recorder.sampler.group_batches == 2
    assert recorder.sampler.lengths is not None and recorder.sampler.batch_size == 4
    assert speed["precision"] == "fp32" and speed["attn_implementation"] == "sdpa"
    assert "cached for next time" in (first.dir / "train.log").read_text()
    assert list((tmp_path / "cache" / "tokenized").iterdir())

    second = distiltune.train(None, fast_overrides)
    assert "train: 18 rows (from cache)" in (second.dir / "train.log").read_text().replace("Tokenized ", "")

    switched_off = {
        **fast_overrides,
        "train.dynamic_padding": False,
        "train.group_by_length": False,
        "train.sort_by_length": False,
        "train.cache_tokenized": False,
        "train.sdpa": False,
        "train.fused_optimizer": False,
        "train.async_steps": False,
    }
    run = distiltune.train(None, switched_off, callbacks=[recorder])
    speed = json.loads((run.dir / "env.json").read_text())["speed"]
    assert recorder.args.logging_nan_inf_filter is True and recorder.args.train_sampling_strategy == "random"
    assert recorder.sampler.lengths is None and speed["length_group_batches"] is None
    assert speed["async_steps"] is False
    assert speed["attn_implementation"] == "eager" and speed["optimizer"] == "adamw_torch"
    assert not (speed["dynamic_padding"] or speed["group_by_length"] or speed["cache_tokenized"])
    saved = yaml.safe_load((run.dir / "config.yaml").read_text())["train"]
    assert saved["dynamic_padding"] is False and saved["sdpa"] is False and saved["sort_by_length"] is False
    assert "from cache" not in (run.dir / "train.log").read_text()
    assert run.metrics["validation"]["samples"] == 6
