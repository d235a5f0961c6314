"""The benchmarks' pure parts: accuracy-equivalence statistics and result merging, padding counts (no training)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import BENCHMARKS, load_benchmark


@pytest.fixture(scope="module")
def equivalence() -> Any:
    return load_benchmark("accuracy_equivalence")


SETTINGS = {
    "model": "minilm",
    "train_samples": 1000,
    "eval_samples": 1000,
    "epochs": 2.0,
    "max_length": 256,
    "batch_size": 16,
    "lr": 5e-05,
    "seeds": "42,43",
}


def write_result(path: Path, seeds_and_differences: list[tuple[int, float]], **overrides: Any) -> Path:
    runs = [
        {
            "seed": seed,
            "naive_accuracy": 0.86,
            "distiltune_accuracy": 0.86 + difference / 100,
            "difference_points": difference,
        }
        for seed, difference in seeds_and_differences
    ]
    path.write_text(json.dumps({"args": SETTINGS | overrides, "runs": runs}), encoding="utf-8")
    return path


def test_summary_matches_a_t_interval(equivalence: Any) -> None:
    summary = equivalence.summarize([-0.4, 0.7, 0.4, -1.2], margin=0.5)
    assert summary["n"] == 4
    assert summary["mean"] == pytest.approx(-0.12, abs=0.01)
    assert summary["sd"] == pytest.approx(0.85, abs=0.01)
    assert (summary["ci95_low"], summary["ci95_high"]) == pytest.approx((-1.48, 1.23), abs=0.01)
    # The 90% interval is narrower than the 95% one and both contain the mean.
    assert summary["ci95_low"] < summary["ci90_low"] < summary["mean"] < summary["ci90_high"] < summary["ci95_high"]
    assert summary["equivalent"] is False  # four noisy seeds cannot bound the difference inside ±0.5
    assert summary["non_inferior"] is False  # ...nor show it is no worse than -0.5


def test_tost_verdict_follows_the_90_percent_interval(equivalence: Any) -> None:
    tight = equivalence.summarize([0.1, -0.1, 0.2, -0.2, 0.0, 0.1, -0.1, 0.05, -0.05, 0.0])
    assert tight["equivalent"] is True and tight["tost_p"] < 0.05
    assert -0.5 < tight["ci90_low"] and tight["ci90_high"] < 0.5
    shifted = equivalence.summarize([0.6, 0.7, 0.8, 0.65, 0.75])  # tight, but outside the margin
    assert shifted["equivalent"] is False and shifted["tost_p"] > 0.5
    assert shifted["non_inferior"] is True  # ...on the better side: the speed costs no accuracy
    assert tight["non_inferior"] is True
    worse = equivalence.summarize([-0.6, -0.7, -0.8, -0.65, -0.75])
    assert worse["non_inferior"] is False and worse["non_inferiority_p"] > 0.5
    single = equivalence.summarize([0.3])
    assert single["equivalent"] is None and single["se"] is None


def test_combine_pools_seeds_of_matching_runs(equivalence: Any, tmp_path: Path) -> None:
    first = write_result(tmp_path / "a.json", [(43, 0.7), (42, -0.4)])
    second = write_result(tmp_path / "b.json", [(44, 0.4)], seeds="44", set=[])  # files before --set had no "set"
    merged = equivalence.combine([first, second])
    assert [row["seed"] for row in merged["runs"]] == [42, 43, 44]
    target = tmp_path / "merged.json"
    equivalence.write_results(merged, target, 0.5)
    written = json.loads(target.read_text(encoding="utf-8"))
    assert written["args"]["seeds"] == "42,43,44"
    assert written["difference_points"]["n"] == 3
    assert written["difference_points"]["mean"] == pytest.approx(0.23, abs=0.01)


def test_combine_refuses_other_settings_and_repeated_seeds(equivalence: Any, tmp_path: Path) -> None:
    first = write_result(tmp_path / "a.json", [(42, -0.4)])
    longer = write_result(tmp_path / "b.json", [(43, 0.7)], max_length=512)
    with pytest.raises(SystemExit, match="max_length: 256 here, 512 there"):
        equivalence.combine([first, longer])
    ungrouped = write_result(tmp_path / "d.json", [(43, 0.7)], set=["train.group_by_length=false"])
    with pytest.raises(SystemExit, match="set: \\[\\] here, \\['train.group_by_length=false'\\] there"):
        equivalence.combine([first, ungrouped])
    repeated = write_result(tmp_path / "c.json", [(42, 0.1)])
    with pytest.raises(SystemExit, match="Seed 42 appears in more than one file"):
        equivalence.combine([first, repeated])
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(SystemExit, match="broken.json"):
        equivalence.combine([first, tmp_path / "broken.json"])


def test_naive_runs_are_reused_only_from_matching_settings(equivalence: Any, tmp_path: Path) -> None:
    reference = write_result(tmp_path / "reference.json", [(42, 0.5), (43, -0.5)])
    changed_distiltune = SETTINGS | {"set": ["train.fast_attention=false"]}  # --set does not touch naive
    rows = equivalence.reusable_naive_runs(reference, changed_distiltune, [43])
    assert list(rows) == [43] and rows[43]["naive_accuracy"] == 0.86
    with pytest.raises(SystemExit, match="no naive run for seed"):
        equivalence.reusable_naive_runs(reference, SETTINGS, [42, 44])
    with pytest.raises(SystemExit, match="max_length: 512 here, 256 there"):
        equivalence.reusable_naive_runs(reference, SETTINGS | {"max_length": 512}, [42])


def test_length_grouping_counts_padding_per_batch() -> None:
    module = load_benchmark("length_grouping")
    lengths = [1, 4, 2, 3, 5]
    # batches [1, 4], [2, 3], [5]: padded to 4, 3 and 5 -> 8 + 6 + 5 = 19 tokens for 15 real ones
    efficiency, squared = module.padding_efficiency(lengths, 2, [0, 1, 2, 3, 4])
    assert efficiency == pytest.approx(15 / 19) and squared == 16 * 2 + 9 * 2 + 25
    sorted_order = sorted(range(5), key=lengths.__getitem__)
    assert module.padding_efficiency(lengths, 2, sorted_order)[0] == pytest.approx(15 / 17)  # [1, 2], [3, 4], [5]


def test_the_two_residual_layer_norm_graphs_compute_the_same_function() -> None:
    """onnx_profile.py times SkipLayerNormalization against Add + LayerNormalization; the ratio only means something
    if both graphs compute the same output (bias and residual included)."""
    import numpy as np
    import onnxruntime as ort

    onnx_profile = load_benchmark("onnx_profile")

    rng = np.random.default_rng(0)
    feeds = {name: rng.standard_normal((1, 5, 16)).astype(np.float32) for name in ("x", "skip")}
    fused, plain = (
        ort.InferenceSession(onnx_profile.layer_norm_graph(kind, 5, 16), providers=["CPUExecutionProvider"]).run(
            None, feeds
        )[0]
        for kind in (True, False)
    )
    summed = feeds["x"] + feeds["skip"]
    assert np.allclose(fused, plain, atol=1e-5)
    assert not np.allclose(plain, (summed - summed.mean(-1, keepdims=True)) / summed.std(-1, keepdims=True), atol=1e-3)


def test_inference_rounds_take_turns_and_report_each_backends_median() -> None:
    throughput = load_benchmark("throughput")

    calls: list[str] = []
    figures = throughput.interleaved_rounds(
        {"naive": lambda: calls.append("naive"), "onnx": lambda: calls.append("onnx")}, samples=10, rounds=3
    )
    # In turn, so a slow spell hits both backends, and each round starts one later: no fixed predecessor.
    assert calls == ["naive", "onnx", "onnx", "naive", "naive", "onnx"]
    for median, by_round in figures.values():
        assert len(by_round) == 3 and median == sorted(by_round)[1] and median > 0


def test_rounds_replace_the_first_pass_figure_with_their_median() -> None:
    throughput = load_benchmark("throughput")
    rows = {"naive": {"samples_per_second": 123.0, "accuracy": 0.7}}

    throughput.record_rounds(rows, {"naive": lambda: None}, samples=10, rounds=3)

    row = rows["naive"]
    assert row["first_pass_samples_per_second"] == 123.0 and row["accuracy"] == 0.7
    assert len(row["samples_per_second_by_round"]) == 3
    assert row["samples_per_second"] == sorted(row["samples_per_second_by_round"])[1]


def test_throughput_default_learning_rate_depends_on_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    throughput = load_benchmark("throughput")

    def parsed(*argv: str) -> float:
        monkeypatch.setattr(sys, "argv", ["throughput.py", *argv])
        return throughput.parse_args().lr

    assert parsed() == 2e-4
    assert parsed("--model", "/models/distilbert-base-uncased") == 5e-5
    assert parsed("--lr", "3e-5") == 3e-5


# --- the strong peer ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def throughput() -> Any:
    return load_benchmark("throughput")


@pytest.mark.parametrize("detected", ["bf16", "fp32"])
def test_the_peer_trainer_carries_the_strong_recipe(
    throughput: Any, tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, detected: str
) -> None:
    """Dynamic padding, length-grouped sampling, fused AdamW, SDPA, and bf16 exactly where the hardware detection
    finds it: the peer is only the strongest peer if its Trainer really runs with all of them."""
    import pandas as pd
    from transformers import AutoTokenizer, DataCollatorWithPadding
    from transformers.trainer_pt_utils import LengthGroupedSampler

    import distiltune.hardware

    asked: list[tuple[str, str]] = []
    monkeypatch.setattr(
        distiltune.hardware,
        "resolve_precision",
        lambda requested, device, *_: asked.append((requested, device)) or detected,
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    train = pd.DataFrame(
        {"text": ["great", "awful film", "a wonderful day at the game", "bad news", "great team", "awful"] * 2}
    ).assign(label=[1, 0, 1, 0, 1, 0] * 2)
    train_set = throughput.peer_tokenize(tokenizer, train, 16)
    trainer = throughput.peer_trainer(
        throughput.load_peer_model(tiny_model),
        train_set,
        tokenizer,
        tmp_path,
        "cpu",
        batch_size=2,
        lr=1e-3,
        seed=0,
        max_steps=1,
    )

    assert asked == [("auto", "cpu")]  # distiltune's own detection, asked for its automatic choice
    assert trainer.args.bf16 is (detected == "bf16") and trainer.args.fp16 is False
    assert trainer.args.train_sampling_strategy == "group_by_length"
    assert isinstance(trainer._get_train_sampler(), LengthGroupedSampler)
    assert trainer.args.optim == "adamw_torch_fused"
    assert trainer.create_optimizer().defaults["fused"] is True
    assert trainer.model.config._attn_implementation == "sdpa"
    assert isinstance(trainer.data_collator, DataCollatorWithPadding)
    assert len({len(ids) for ids in train_set["input_ids"]}) > 1  # truncated, not padded: the collator pads
    recipe = throughput.peer_recipe(trainer)
    assert recipe["optim"] == "adamw_torch_fused" and recipe["attn_implementation"] == "sdpa"
    assert recipe["bf16"] is (detected == "bf16") and recipe["collator"] == "DataCollatorWithPadding"


def pipeline_figures(train: float, inference: float, memory: float, accuracy: float, precision: str) -> dict:
    return {
        "precision": precision,
        "train_samples_per_second": train,
        "train_tokens_per_second": train * 100,
        "train_tflops_per_second": 0.01,
        "fraction_of_matmul_peak": 0.1,
        "train_peak_memory_mb": memory,
        "inference_samples_per_second": inference,
        "inference_peak_memory_mb": memory / 2,
        "accuracy": accuracy,
    }


def test_the_summary_compares_distiltune_with_naive_and_with_the_peer(
    throughput: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    naive = pipeline_figures(2.0, 10.0, 1000.0, 0.80, "fp32")
    peer = pipeline_figures(4.0, 16.0, 800.0, 0.82, "bf16")
    ours = pipeline_figures(6.0, 24.0, 600.0, 0.83, "bf16")
    inference = {
        "naive eager fp32": {"samples_per_second": 10.0, "accuracy": 0.80},
        "peer pipeline bf16": {"samples_per_second": 16.0, "accuracy": 0.82},
        "distiltune torch bf16": {"samples_per_second": 24.0, "accuracy": 0.83, "agreement_with_torch_fp32": 0.99},
    }
    summary = throughput.compare_pipelines(naive, peer, ours, inference)
    results = json.loads(
        json.dumps(
            {
                "hardware": {"gpu": None, "cpu": "test CPU", "torch_threads": 2},
                "matmul_gflops": {"fp32": 100.0, "bf16": 400.0},
                **summary,
            }
        )
    )  # what the results file holds

    assert results["ratios"]["vs_naive"] == {
        "train_samples_per_second": 3.0,
        "inference_samples_per_second": 2.4,
        "train_peak_memory_mb": 0.6,
        "inference_peak_memory_mb": 0.6,
        "accuracy_points": 3.0,
    }
    assert results["ratios"]["vs_peer"] == {
        "train_samples_per_second": 1.5,
        "inference_samples_per_second": 1.5,
        "train_peak_memory_mb": 0.75,
        "inference_peak_memory_mb": 0.75,
        "accuracy_points": 1.0,
    }
    assert set(results["pipelines"]) == {"naive", "peer", "distiltune"}
    ours_row = results["inference"]["distiltune torch bf16"]
    assert (ours_row["speedup_vs_naive"], ours_row["speedup_vs_peer"]) == (2.4, 1.5)

    monkeypatch.setenv("COLUMNS", "200")  # rich wraps at 80 columns when not on a terminal
    throughput.print_tables(results)
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if "metric" in line)
    assert [cell.strip() for cell in header.strip("┃ ").split("┃")] == [
        "metric",
        "naive",
        "peer",
        "distiltune",
        "vs naive",
        "vs peer",
    ]
    train_row = next(line for line in printed.splitlines() if "train samples/s" in line)
    assert "3.00x" in train_row and "1.50x" in train_row
    accuracy_row = next(line for line in printed.splitlines() if line.startswith("│ accuracy"))
    assert "+3.00 pts" in accuracy_row and "+1.00 pts" in accuracy_row
    assert "vs peer" in printed.split("Inference on the held-out reviews")[1]


# --- the accuracy benchmark's pre-registered plan ---------------------------------------------------------------


def test_seed_ranges_and_the_default_seeds(equivalence: Any) -> None:
    assert equivalence.parse_seeds("100-103,110") == [100, 101, 102, 103, 110]
    assert equivalence.parse_seeds(equivalence.DEFAULT_SEEDS) == list(range(100, 116))
    with pytest.raises(SystemExit, match="give each seed once"):
        equivalence.parse_seeds("100-102,101")
    with pytest.raises(SystemExit, match="'x' is not a seed"):
        equivalence.parse_seeds("100,x")


def test_the_plan_names_the_test_margin_seeds_and_seeds_used_before(
    equivalence: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    write_result(tmp_path / "accuracy_equivalence_old.json", [(42, 0.1), (101, 0.2)])
    (tmp_path / "throughput_old.json").write_text(json.dumps({"args": {"seed": 102}}), encoding="utf-8")
    args = argparse.Namespace(**(SETTINGS | {"set": [], "margin": 0.5, "skip_peer": False}))

    plan = equivalence.make_plan(args, [100, 101, 102], [tmp_path])
    equivalence.print_plan(plan, [tmp_path])
    printed = capsys.readouterr().out

    assert plan["comparisons"] == ["distiltune - naive", "distiltune - peer"]
    assert plan["margin_points"] == 0.5 and plan["seeds"] == [100, 101, 102] and "TOST" in plan["test"]
    assert {Path(name).name: seeds for name, seeds in plan["seeds_already_in_results"].items()} == {
        "accuracy_equivalence_old.json": [101],
        "throughput_old.json": [102],
    }
    assert plan["settings"]["max_length"] == 256
    assert "margin: 0.5 points" in printed and "seeds (3): 100, 101, 102" in printed
    assert "NOT FRESH: seed(s) 101, 102" in printed
    fresh = equivalence.make_plan(args, [200], [tmp_path])
    assert fresh["seeds_already_in_results"] == {}


def test_results_summarize_the_peer_comparison_over_the_seeds_that_trained_it(
    equivalence: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    results = json.loads(write_result(tmp_path / "r.json", [(100, 0.5), (101, -0.5), (102, 0.0)]).read_text())
    for row, peer in zip(results["runs"][:2], (0.85, 0.87), strict=True):  # seed 102: a run without the peer
        row["peer_accuracy"] = peer
        row["difference_vs_peer_points"] = round(100 * (row["distiltune_accuracy"] - peer), 2)
    target = tmp_path / "written.json"

    equivalence.write_results(results, target, 0.5)

    written = json.loads(target.read_text(encoding="utf-8"))
    assert written["difference_points"]["n"] == 3
    assert written["difference_vs_peer_points"]["n"] == 2
    assert written["difference_vs_peer_points"]["mean"] == pytest.approx(0.0, abs=0.01)  # +1.5 and -1.5
    assert written["peer_mean_accuracy"] == pytest.approx(0.86)
    monkeypatch.setenv("COLUMNS", "200")
    equivalence.print_table(written)
    printed = capsys.readouterr().out
    assert "vs peer (points)" in printed and "Against the peer, 2 seeds" in printed


# --- training_mfu.py's peer rows ---------------------------------------------------------------------------------


def test_mfu_peer_configurations_become_training_arguments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mfu = load_benchmark("training_mfu")

    spec = mfu.TrainConfigSpec.parse("128:768:compile:dataloader_num_workers=4:dataloader_pin_memory=true")
    assert mfu.peer_arguments(spec) == {
        "torch_compile": True,
        "dataloader_num_workers": 4,
        "dataloader_pin_memory": True,
    }
    assert mfu.peer_arguments(mfu.TrainConfigSpec.parse("128:32")) == {}
    monkeypatch.setattr(sys, "argv", ["training_mfu.py", "--peer-configs", "128:32:dataloader_workers=4"])
    with pytest.raises(SystemExit):
        mfu.parse_args()
    assert "dataloader_workers is not a TrainingArguments field" in capsys.readouterr().err


def test_mfu_rows_are_compared_with_the_baselines_of_the_same_shape() -> None:
    mfu = load_benchmark("training_mfu")

    def row(pipeline: str, batch: int, samples_per_second: float, **overrides: str) -> dict[str, Any]:
        return {
            "pipeline": pipeline,
            "max_length": 128,
            "batch_size": batch,
            "compile": False,
            "overrides": overrides,
            "train_samples_per_second": samples_per_second,
        }

    runs = [
        row("naive", 32, 100.0),
        row("peer", 32, 150.0),
        row("peer", 32, 180.0, dataloader_num_workers="4"),  # a variant: compared, but never the reference
        row("distiltune", 32, 300.0),
        row("distiltune", 768, 3000.0),  # no baseline at this shape
        {"pipeline": "peer", "config": "128:768", "skipped": "time budget"},
    ]
    mfu.add_same_shape_ratios(runs)

    assert (runs[3]["vs_naive"], runs[3]["vs_peer"]) == (3.0, 2.0)
    assert runs[1]["vs_naive"] == 1.5 and "vs_peer" not in runs[1]
    assert runs[2]["vs_naive"] == 1.8
    assert "vs_naive" not in runs[0] and "vs_naive" not in runs[4] and "vs_peer" not in runs[4]


def test_serve_load_summary_counts_statuses_and_times_only_answers_after_the_warmup() -> None:
    serve_load = load_benchmark("serve_load")
    outcomes = [serve_load.Outcome(start=0.0, seconds=5.0, status="200")]  # inside the warm-up: not counted
    outcomes += [serve_load.Outcome(start=1.0 + i / 10, seconds=0.1 * (i + 1), status="200") for i in range(10)]
    outcomes += [serve_load.Outcome(start=1.5, seconds=0.001, status="429")]
    outcomes += [serve_load.Outcome(start=1.6, seconds=0.2, status="503")]
    outcomes += [serve_load.Outcome(start=1.7, seconds=60.0, status="error:ReadTimeout")]
    level = serve_load.Level(mode="closed", clients=4, outcomes=outcomes)
    summary = serve_load.summarize(level, warmup=1.0)
    assert summary["requests"] == 13
    assert summary["rejected_429"] == 1 and summary["server_errors_5xx"] == 1 and summary["client_errors"] == 1
    assert summary["latency_ms"]["p50"] == 550.0  # of the ten 200 answers only: 100..1000 ms
    assert summary["texts_per_second"] == round(10 / (61.7 - 1.0), 2)  # window: first start to last answer


def distiltune_imports(script: Path) -> list[tuple[int, str, str]]:
    """Every ``from distiltune... import name`` in a benchmark script, with its line (function-local ones too)."""
    import ast

    found = []
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "distiltune":
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("script", sorted(BENCHMARKS.glob("*.py")), ids=lambda path: path.name)
def test_every_name_a_benchmark_imports_from_distiltune_exists(script: Path) -> None:
    # Benchmarks import the library inside functions (torch stays unloaded for --help), so a renamed or moved name
    # only fails after a long run has trained its first model; serve_load.py did once.
    import importlib

    missing = []
    for line, module_name, name in distiltune_imports(script):
        module = importlib.import_module(module_name)
        if not hasattr(module, name):
            try:
                importlib.import_module(f"{module_name}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{script.name}:{line}: {module_name}.{name}")
    assert missing == []


def test_serve_load_servers_take_turns_at_each_level_and_overload_at_their_own_best_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serve_load = load_benchmark("serve_load")
    servers = [serve_load.Server(name, ["true"], port, False) for name, port in (("a", 1), ("b", 2))]
    calls: list[tuple[str, str]] = []
    speeds = {"a": 10.0, "b": 20.0}

    def fake_measure(server: Any, texts: list[str], args: Any, level_runner: Any) -> dict:
        coroutine = level_runner()  # closed_loop(...) or open_loop(...), never awaited here
        calls.append((server.name, coroutine.cr_code.co_name))
        coroutine.close()
        return {"texts_per_second": speeds[server.name]}

    monkeypatch.setattr(serve_load, "measure", fake_measure)
    rates: list[float] = []
    real_open_loop = serve_load.open_loop

    def recording_open_loop(url: str, texts: list[str], rate: float, args: Any) -> Any:
        rates.append(rate)
        return real_open_loop(url, texts, rate, args)

    monkeypatch.setattr(serve_load, "open_loop", recording_open_loop)
    args = serve_load.parse_args(["--concurrency", "1,8", "--overload-factor", "2"])
    levels = list(serve_load.load_round(servers, ["text"], args))
    assert [(server.name, call[1]) for (server, _), call in zip(levels, calls, strict=True)] == [
        ("a", "closed_loop"),
        ("b", "closed_loop"),
        ("a", "closed_loop"),
        ("b", "closed_loop"),
        ("a", "open_loop"),
        ("b", "open_loop"),
    ]
    assert rates == [20.0, 40.0]


def test_serve_load_medians_are_taken_per_load_over_rounds() -> None:
    serve_load = load_benchmark("serve_load")
    counts = {"rejected_429": 1, "server_errors_5xx": 0, "client_errors": 2}
    levels = [
        {"mode": "closed", "clients": 32, "texts_per_second": rate, "latency_ms": {"p50": 1, "p95": 2, "p99": p99}}
        | counts
        for rate, p99 in ((10.0, 300.0), (30.0, 100.0), (20.0, 200.0))
    ]
    levels.append({"mode": "open", "clients": None, "texts_per_second": 5.0, "latency_ms": None} | counts)
    medians = {row["load"]: row for row in serve_load.level_medians(levels)}
    assert medians["32"]["texts_per_second"] == 20.0 and medians["32"]["latency_ms"]["p99"] == 200.0
    assert medians["32"]["rounds"] == 3 and medians["32"]["client_errors"] == 6
    assert medians["open"]["texts_per_second"] == 5.0 and medians["open"]["latency_ms"]["p50"] is None


def test_tune_benchmark_resumes_only_its_own_measured_seeds(tmp_path: Path) -> None:
    tune = load_benchmark("tune")
    settings = tune.settings_of(tune.parse_args(["--seeds", "1,2,3", "--timeout", "2h"]))
    output = tmp_path / "tune.json"
    assert tune.resumable_runs(output, settings) == {}
    measured = {"default": {"test_accuracy": 0.8}, "best": {"test_accuracy": 0.82}}
    runs = [{"seed": 1, **measured}, {"seed": 2, "default": {"test_accuracy": 0.8}}]  # seed 2 was cut short
    output.write_text(json.dumps({"settings": settings, "runs": runs}))
    # Another session: another timeout and data path, the same benchmark.
    again = settings | {"timeout": "90m", "data": "/elsewhere/data"}
    assert list(tune.resumable_runs(output, again)) == [1]
    with pytest.raises(SystemExit, match="other settings \\(trials\\)"):
        tune.resumable_runs(output, settings | {"trials": 20})


def test_imbalance_appends_only_to_a_file_of_the_same_settings(tmp_path: Path) -> None:
    imbalance = load_benchmark("imbalance")
    settings = {k: str(v) for k, v in vars(imbalance.parse_args(["--seeds", "42,43,44"])).items()}
    path = tmp_path / "imbalance.json"
    runs = [{"minority": "negative", "seed": 42, "variant": "none", "macro_f1": 70.0}]
    path.write_text(json.dumps({"args": settings, "runs": runs}))
    more_seeds = settings | {"seeds": "45,46", "output": "elsewhere.json"}
    result = imbalance.results_to_extend(path, more_seeds)
    assert result["runs"] == runs and result["appended_args"] == [more_seeds]
    with pytest.raises(SystemExit, match="other settings \\(lr"):
        imbalance.results_to_extend(path, settings | {"lr": "3e-05"})
