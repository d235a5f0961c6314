"""Baselines (untuned, tfidf) and ``compare``: files, table, fairness, failures and resume."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file
from typer.testing import CliRunner

import distiltune
from distiltune import runs
from distiltune.cli import app
from distiltune.errors import ConfigError, RunError
from distiltune.methods import METHODS, Method, MethodConfig
from distiltune.methods.full import apply_full, load_pretrained, save_pretrained

TEXTS = ["the movie was great and fun", "boring awful plot", "the acting", "love it", "hate this very dull film"]
HEADLINE_KEYS = {"accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted", "per_class", "samples"}


def test_untuned_evaluates_without_a_single_optimizer_step(fast_overrides: dict, tiny_model: str) -> None:
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    steps: list[str] = []
    handle = register_optimizer_step_pre_hook(lambda optimizer, args, kwargs: steps.append(type(optimizer).__name__))
    try:
        control = distiltune.train(None, {**fast_overrides, "train.max_steps": 2})
        assert len(steps) == 2, "the counter must see the optimizer steps of a training run"
        steps.clear()
        run = distiltune.train(None, {**fast_overrides, "method.name": "untuned"})
    finally:
        handle.remove()
    assert steps == []
    history = runs.read_jsonl(run.dir / "history.jsonl")
    assert len(history) == 1 and history[0]["step"] == 0 and history[0]["train_loss"] is None
    assert run.metrics["trainable_params"] == 0 and run.metrics["train_samples_per_second"] is None
    # The encoder is bit-identical to the pretrained one; only the head is new.
    pretrained = load_file(str(Path(tiny_model) / "model.safetensors"))
    saved = load_file(str(run.dir / "model" / "model.safetensors"))
    encoder_keys = [key for key in pretrained if key.startswith("distilbert.")]
    assert encoder_keys and all(np.array_equal(pretrained[key], saved[key]) for key in encoder_keys)
    assert not np.array_equal(
        load_file(str(control.dir / "model" / "model.safetensors"))["distilbert.embeddings.word_embeddings.weight"],
        saved["distilbert.embeddings.word_embeddings.weight"],
    )
    # It reloads and predicts like any run, and reproduces its own predictions.jsonl.
    predictions = runs.read_jsonl(run.dir / "predictions.jsonl")
    reloaded = run.load(precision="fp32").predict_proba([row["text"] for row in predictions])
    expected = np.array([list(row["probabilities"].values()) for row in predictions])
    assert np.allclose(reloaded, expected, atol=1e-5)


def test_tfidf_run_saves_without_pickle_and_reloads_in_a_fresh_process(fast_overrides: dict) -> None:
    run = distiltune.train(None, {**fast_overrides, "method.name": "tfidf", "method.ngram_max": 1})
    assert {p.name for p in run.dir.iterdir()} >= {
        "config.yaml",
        "env.json",
        "metrics.json",
        "history.jsonl",
        "predictions.jsonl",
        "train.log",
        "model",
        "plots",
    }
    model_files = {p.name for p in (run.dir / "model").iterdir()}
    assert model_files == {"tfidf.safetensors", "vocabulary.json", "tfidf.json", "labels.json"}
    plots = {p.name for p in (run.dir / "plots").iterdir()}
    assert plots == {"loss.png", "accuracy_f1.png", "confusion_matrix.png", "reliability.png"}
    assert HEADLINE_KEYS <= set(run.metrics["validation"])
    history = runs.read_jsonl(run.dir / "history.jsonl")
    assert len(history) == 1 and {"train_loss", "eval_loss", "accuracy", "f1_macro"} <= set(history[0])
    assert run.metrics["trainable_params"] > 0 and run.metrics["data_fingerprint"]["train"]
    assert run.metrics["peak_memory_mb"] > 0 and run.metrics["peak_memory_kind"] == "rss"

    in_memory = run.load().predict_proba(TEXTS)
    script = (
        "import json, sys, distiltune\n"
        "probabilities = distiltune.load(sys.argv[1]).predict_proba(json.loads(sys.argv[2]))\n"
        "print(json.dumps(probabilities.tolist()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(run.dir), json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert np.array_equal(np.array(json.loads(result.stdout.strip().splitlines()[-1])), in_memory)

    # The saved arrays reproduce scikit-learn's own pipeline fitted on the same split.
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from distiltune.data import load_data

    data = load_data(run.config.data, seed=run.config.train.seed)
    options = run.config.method
    vectorizer = TfidfVectorizer(ngram_range=(1, 1), sublinear_tf=True, max_features=options.max_features)
    features = vectorizer.fit_transform(data.train["text"])
    reference = LogisticRegression(C=options.c, max_iter=options.max_iter).fit(features, data.train["label"])
    assert np.allclose(reference.predict_proba(vectorizer.transform(TEXTS)), in_memory, atol=1e-6)

    predictions = runs.read_jsonl(run.dir / "predictions.jsonl")
    evaluated = distiltune.evaluate(run.dir, fast_overrides["data.dataset"])
    assert evaluated["samples"] == 24 and len(predictions) == run.metrics["validation"]["samples"]


def test_tfidf_joins_sentence_pairs(fixtures_dir: Path, fast_overrides: dict) -> None:
    run = distiltune.train(
        None,
        {
            **fast_overrides,
            "data.dataset": str(fixtures_dir / "pairs.tsv"),
            "data.text_column": None,
            "data.label_column": None,
            "method.name": "tfidf",
        },
    )
    classifier = run.load()
    assert classifier.is_pair
    result = classifier.predict(["the man runs"], pairs=["a man runs"], top_k=2)[0]
    assert {s["label"] for s in result["scores"]} == {"contradiction", "entailment"}
    assert "text_pair" in runs.read_jsonl(run.dir / "predictions.jsonl")[0]


def test_split_seed_fixes_the_validation_split_whatever_the_training_seed(fixtures_dir: Path) -> None:
    from distiltune.config import DataConfig
    from distiltune.data import load_data
    from distiltune.data.fingerprint import frame_fingerprint

    base = DataConfig(dataset=str(fixtures_dir / "tiny.csv"), validation_fraction=0.25)
    by_training_seed = {frame_fingerprint(load_data(base, seed=seed).validation) for seed in (1, 2, 3)}
    assert len(by_training_seed) > 1  # without split_seed the split follows the training seed
    fixed = base.model_copy(update={"split_seed": 7})
    assert len({frame_fingerprint(load_data(fixed, seed=seed).validation) for seed in (1, 2, 3)}) == 1


REPORT_PLOTS = {
    "loss_curves.png",
    "accuracy_curves.png",
    "f1_bars.png",
    "accuracy_vs_params.png",
    "accuracy_vs_total_params.png",
    "accuracy_vs_speed.png",
}


def test_compare_writes_every_file_with_one_row_per_method_on_identical_splits(
    fast_overrides: dict, tmp_path: Path
) -> None:
    comparison = distiltune.compare(
        None, fast_overrides, methods="full,untuned,tfidf", seeds=2, output_dir=tmp_path / "compare"
    )
    root = comparison.dir
    assert root.parent == tmp_path / "compare" and root.name.endswith("_tiny")
    # One model (--model): its encoder runs carry its name; TF-IDF does not depend on the model.
    runs_expected = {f"distilbert_{m}_seed{s}" for m in ("full", "untuned") for s in (42, 43)}
    runs_expected |= {f"tfidf_seed{s}" for s in (42, 43)}
    files = {"compare.yaml", "compare.log", "comparison.json", "comparison.md", "report.html", "plots"}
    assert {p.name for p in root.iterdir()} == files | runs_expected
    assert {p.name for p in (root / "plots").iterdir()} == REPORT_PLOTS
    assert all((root / "plots" / name).stat().st_size > 5000 for name in REPORT_PLOTS)

    results = runs.read_json(root / "comparison.json")
    assert [row["method"] for row in results["table"]] == ["full", "untuned", "tfidf"]
    for row in results["table"]:
        assert row["status"] == "ok" and row["seeds_completed"] == 2
        assert row["accuracy"]["n"] == 2 and row["f1_macro"]["sd"] is not None
        assert row["train_seconds"]["mean"] > 0 and row["peak_memory_mb"]["mean"] > 0
        assert row["peak_memory_increase_mb"]["mean"] >= 0
    assert results["table"][1]["trainable_params"] == 0
    full_metrics = [runs.read_json(root / f"distilbert_full_seed{s}" / "metrics.json") for s in (42, 43)]
    mean_accuracy = np.mean([m["validation"]["accuracy"] for m in full_metrics])
    assert results["table"][0]["accuracy"]["mean"] == pytest.approx(mean_accuracy)
    assert len(results["runs"]) == 6 and all(r["status"] == "completed" for r in results["runs"])

    # Identical splits for every method and seed, identical token ids for every encoder run.
    assert results["fairness"]["splits"]["identical"] is True and results["fairness"]["splits"]["runs_checked"] == 6
    assert results["fairness"]["tokenization"]["identical"] is True
    assert results["fairness"]["tokenization"]["runs_checked"] == 4
    evaluated_texts = {
        tuple(row["text"] for row in runs.read_jsonl(root / name / "predictions.jsonl")) for name in runs_expected
    }
    assert len(evaluated_texts) == 1
    seeds = {runs.read_json(root / name / "metrics.json")["data_fingerprint"]["validation"] for name in runs_expected}
    assert len(seeds) == 1

    markdown = (root / "comparison.md").read_text()
    body = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| Model")]
    assert len(body) == 3 and " ± " in body[0]
    html = (root / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(REPORT_PLOTS)
    assert 'src="http' not in html and "<link" not in html and "<script" not in html
    assert all(name in html for name in ("untuned", "tfidf", "Fairness"))


@dataclass
class BrokenConfig(MethodConfig):
    name: ClassVar[str] = "broken"


def _broken_apply(model: Any, config: BrokenConfig) -> Any:
    raise RuntimeError("this method is broken on purpose")


def test_a_failing_method_is_reported_the_others_finish_and_resume_reruns_only_it(
    fast_overrides: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        METHODS, "broken", Method("broken", BrokenConfig, _broken_apply, save_pretrained, load_pretrained)
    )
    comparison = distiltune.compare(
        None, fast_overrides, methods=["broken", "untuned", "tfidf"], seeds=1, output_dir=tmp_path
    )
    table = {row["method"]: row for row in comparison.table}
    assert table["broken"]["status"] == "failed" and "broken on purpose" in table["broken"]["error"]
    assert table["untuned"]["status"] == "ok" and table["tfidf"]["status"] == "ok"
    assert "broken on purpose" in (comparison.dir / "report.html").read_text()
    assert "broken on purpose" in (comparison.dir / "comparison.md").read_text()
    assert "Traceback" in (comparison.dir / "compare.log").read_text()
    finished = {
        name: (comparison.dir / name / "metrics.json").stat().st_mtime_ns
        for name in ("distilbert_untuned_seed42", "tfidf_seed42")
    }

    # Fix the method and resume: only the failed run trains again.
    monkeypatch.setitem(
        METHODS, "broken", Method("broken", BrokenConfig, apply_full, save_pretrained, load_pretrained)
    )
    from distiltune import training

    trained: list[str] = []
    real_train = training.train

    def recording_train(config: Any = None, overrides: Any = None, **kwargs: Any) -> Any:
        trained.append(config.run.name)  # compare hands each run its Config
        return real_train(config, overrides, **kwargs)

    monkeypatch.setattr(training, "train", recording_train)
    resumed = distiltune.compare(resume=comparison.dir)
    assert trained == ["distilbert_broken_seed42"]
    assert all(row["status"] == "ok" for row in resumed.table)
    assert {r.name: r.reused for r in resumed.runs} == {
        "distilbert_broken_seed42": False,
        "distilbert_untuned_seed42": True,
        "tfidf_seed42": True,
    }
    for name, mtime in finished.items():
        assert (comparison.dir / name / "metrics.json").stat().st_mtime_ns == mtime
    assert (comparison.dir / "distilbert_broken_seed42.incomplete").is_dir()  # the failed attempt is kept, not deleted
    assert resumed.fairness["splits"]["identical"] is True


def test_bad_compare_requests_fail_before_any_run(fast_overrides: dict, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'full'"):
        distiltune.compare(None, fast_overrides, methods="ful,tfidf", output_dir=tmp_path / "a")
    with pytest.raises(ConfigError, match="method.rank is not an option"):
        distiltune.compare(None, {**fast_overrides, "method.rank": 4}, methods="full", output_dir=tmp_path / "b")
    with pytest.raises(ConfigError, match="exceeds the model's limit of 64"):
        distiltune.compare(None, {**fast_overrides, "data.max_length": 512}, methods="full", output_dir=tmp_path / "d")
    with pytest.raises(ConfigError, match="seeds"):
        distiltune.compare(None, fast_overrides, methods="tfidf", seeds=0, output_dir=tmp_path / "c")
    assert not any((tmp_path / name).exists() for name in "abcd")
    with pytest.raises(ConfigError, match="--resume reuses"):
        distiltune.compare(None, {"train.lr": 1e-3}, resume=tmp_path)


def test_cli_compare_then_report(fast_overrides: dict, tiny_encoders: dict, tmp_path: Path) -> None:
    flagged = ("data.dataset", "data.text_column", "data.label_column", "data.max_length", "train.lr", "model.name")
    sets = [f"--set={key}={value}" for key, value in fast_overrides.items() if key not in flagged]
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "compare",
            "--dataset",
            str(fast_overrides["data.dataset"]),
            "--models",
            f"{tiny_encoders['distilbert']},{tiny_encoders['roberta']}",
            "--methods",
            "tfidf",
            "--seeds",
            "1,5",
            "--text-column",
            "review",
            "--label-column",
            "sentiment",
            "--max-length",
            "12",
            "--lr",
            "0.02",
            "--pooling",
            "mean",
            "--output-dir",
            str(tmp_path / "cli"),
            *sets,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "tfidf" in result.output and "report.html" in result.output and "Recommendation: tfidf" in result.output
    (compare_dir,) = (tmp_path / "cli").iterdir()
    assert {p.name for p in compare_dir.iterdir()} >= {"tfidf_seed1", "tfidf_seed5"}
    plan = yaml.safe_load((compare_dir / "compare.yaml").read_text())
    assert [(m["label"], m["max_length"]) for m in plan["models"]] == [("distilbert", 12), ("roberta", 12)]
    train, data, model = plan["config"]["train"], plan["config"]["data"], plan["config"]["model"]
    assert (train["lr"], data["text_column"], model["pooling"]) == (0.02, "review", "mean")
    (compare_dir / "report.html").unlink()
    again = runner.invoke(app, ["report", str(compare_dir)])
    assert again.exit_code == 0, again.output
    assert (compare_dir / "report.html").is_file() and "ok (2)" in again.output
    missing = runner.invoke(app, ["report", str(tmp_path)])
    # main() turns this DistiltuneError into one line and exit code 2.
    assert isinstance(missing.exception, RunError) and "not a comparison directory" in str(missing.exception)


def test_the_comparison_table_never_truncates_a_cell(capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    from distiltune.cli.compare import print_comparison

    wide = {"mean": 123456.789, "sd": 98765.4321}
    row = {
        "model": "multilingual-e5-large-instruct",
        "method": "lora+mlp-head",
        "status": "ok",
        "seeds_completed": 12,
        "error": None,
        **{key: wide for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro")},
        "trainable_params": 123456789,
        "trainable_percent": 12.3,
        **{key: wide for key in ("train_seconds", "train_samples_per_second")},
        **{key: wide for key in ("peak_memory_mb", "peak_memory_increase_mb")},
        "total_params": 987654321,
        "inference_samples_per_second": wide,
        "vs_best": {"best": False, "p_value": 0.0123, "within_noise": False},
    }
    print_comparison(SimpleNamespace(dir=Path("compare"), table=[row], report=Path("compare/report.html")))
    output = capsys.readouterr().out
    assert "…" not in output
    assert "ok (12)" in output and "123456.789 ± 98765.432" in output and "98,765" in output
    assert "multilingual-e5-large-instruct" in output and "987,654,321" in output and "differs (p 0.012)" in output
