"""``compare`` over models: the models x methods x seeds grid, per-model settings, a model that cannot be loaded,
methods a model refuses, the significance marks and the recommendation, and comparisons written before models."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

import distiltune
from distiltune import runs
from distiltune.comparison import plots as comparison_plots
from distiltune.comparison.plan import left_out, new_plan, plan_records
from distiltune.comparison.statistics import mark_noise, recommend, welch_p_value
from distiltune.errors import ConfigError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GRID_PLOTS = {
    "loss_curves.png",
    "accuracy_curves.png",
    "f1_bars.png",
    "accuracy_vs_params.png",
    "accuracy_vs_total_params.png",
    "accuracy_vs_speed.png",
}


def tiny_overrides(output: Path) -> dict[str, Any]:
    """Two optimizer steps per run (one evaluation, at the end): a run takes a second or two."""
    return {
        "data.dataset": str(FIXTURES / "tiny.csv"),
        "data.text_column": "review",
        "data.label_column": "sentiment",
        "data.max_length": 16,
        "data.validation_fraction": 0.25,
        "train.max_steps": 2,
        "train.batch_size": 4,
        "train.lr": 1e-3,
        "train.precision": "fp32",
        "train.logging_steps": 1,
        "run.output_dir": str(output),
    }


@pytest.fixture(scope="module")
def grid(tiny_encoders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """2 models (DistilBERT with its own lr and batch size, BERT with its own max length) x full and TF-IDF x 2
    seeds, with the legend labels of every curve figure recorded."""
    output = tmp_path_factory.mktemp("grid")
    legends: dict[str, list[list[str]]] = {}  # per figure, the legend labels of each panel
    real_save = comparison_plots.save_figure

    def recording_save(fig: Any, axes: Any, path: Path) -> None:
        legends[path.name] = [ax.get_legend_handles_labels()[1] for ax in axes]
        real_save(fig, axes, path)

    models = [
        {"name": str(tiny_encoders["distilbert"]), "label": "distil", "train": {"lr": 5e-3, "batch_size": 2}},
        {"name": str(tiny_encoders["bert"]), "data.max_length": 12},
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(comparison_plots, "save_figure", recording_save)
        comparison = distiltune.compare(
            None, tiny_overrides(output), models=models, methods="full,tfidf", seeds=2, output_dir=output
        )
    return {"comparison": comparison, "legends": legends}


def test_a_models_grid_writes_one_run_per_cell_and_the_tfidf_baseline_once(grid: dict[str, Any]) -> None:
    comparison = grid["comparison"]
    root = comparison.dir
    cells = {f"{model}_full_seed{seed}" for model in ("distil", "bert") for seed in (42, 43)}
    baselines = {"tfidf_seed42", "tfidf_seed43"}
    files = {"compare.yaml", "compare.log", "comparison.json", "comparison.md", "report.html", "plots"}
    assert {p.name for p in root.iterdir()} == files | cells | baselines
    assert all(runs.is_completed(root / name) for name in cells | baselines)
    assert {p.name for p in (root / "plots").iterdir()} == GRID_PLOTS

    results = runs.read_json(root / "comparison.json")
    assert [(row["model"], row["method"]) for row in results["table"]] == [
        ("distil", "full"),
        ("bert", "full"),
        (None, "tfidf"),
    ]
    for row in results["table"]:
        assert row["status"] == "ok" and row["seeds_completed"] == 2 and row["accuracy"]["n"] == 2
        assert row["total_params"] > 0 and row["inference_samples_per_second"]["mean"] > 0
        assert set(row["by_seed"]) == {"42", "43"}
    distil = [runs.read_json(root / f"distil_full_seed{seed}" / "metrics.json") for seed in (42, 43)]
    speeds = [m["validation"]["eval_samples_per_second"] for m in distil]
    assert results["table"][0]["inference_samples_per_second"]["mean"] == pytest.approx(sum(speeds) / 2)
    assert results["table"][0]["total_params"] == distil[0]["total_params"]

    # Same splits for all six runs; token ids identical within each model (each has its own max length).
    assert results["fairness"]["splits"]["identical"] is True and results["fairness"]["splits"]["runs_checked"] == 6
    tokens = results["fairness"]["tokenization"]
    assert tokens["identical"] is True and set(tokens["models"]) == {"distil", "bert"}
    assert all(check["runs_checked"] == 2 for check in tokens["models"].values())

    # Curves: the training accuracy is in every encoder run's history, and every model is in the overlaid figures.
    history = runs.read_jsonl(root / "bert_full_seed42" / "history.jsonl")
    assert history and all(isinstance(row["train_accuracy"], float) for row in history)
    panels = [*grid["legends"]["loss_curves.png"], *grid["legends"]["accuracy_curves.png"]]
    assert len(panels) == 5  # training and validation loss; training accuracy, validation accuracy and F1
    for labels in panels:
        assert any(label.startswith("distil / full") for label in labels), labels
        assert any(label.startswith("bert / full") for label in labels), labels
        assert any(label.startswith("tfidf") for label in labels), labels

    # The dataset summary (token lengths under each tokenizer) is logged once per model, not once per run.
    summaries = [line for line in (root / "compare.log").read_text().splitlines() if "(single text): 2 labels" in line]
    assert len(summaries) == 2

    markdown = (root / "comparison.md").read_text()
    body = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| Model")]
    assert [line.split(" | ")[:2] for line in body] == [["| distil", "full"], ["| bert", "full"], ["| -", "tfidf"]]
    html = (root / "report.html").read_text()
    recommendation = html.index("Recommendation:")
    assert recommendation < html.index("<h2>Results</h2>") and comparison.recommendation["line"] in html
    assert html.count("data:image/png;base64,") == len(GRID_PLOTS)


def test_per_model_settings_reach_their_runs_and_the_rest_keeps_the_shared_config(grid: dict[str, Any]) -> None:
    root = grid["comparison"].dir

    def config(name: str) -> dict[str, Any]:
        return yaml.safe_load((root / name / "config.yaml").read_text())

    for seed in (42, 43):
        distil, bert, tfidf = (config(f"{prefix}seed{seed}") for prefix in ("distil_full_", "bert_full_", "tfidf_"))
        assert (distil["train"]["lr"], distil["train"]["batch_size"], distil["data"]["max_length"]) == (5e-3, 2, 16)
        assert (bert["train"]["lr"], bert["train"]["batch_size"], bert["data"]["max_length"]) == (1e-3, 4, 12)
        assert tfidf["train"]["batch_size"] == 4 and tfidf["model"]["name"] == distil["model"]["name"]
        assert distil["train"]["seed"] == bert["train"]["seed"] == tfidf["train"]["seed"] == seed
        assert distil["data"]["split_seed"] == bert["data"]["split_seed"] == 42
    plan = yaml.safe_load((root / "compare.yaml").read_text())
    assert [(m["label"], m["settings"], m["max_length"]) for m in plan["models"]] == [
        ("distil", {"train.lr": 5e-3, "train.batch_size": 2}, 16),
        ("bert", {"data.max_length": 12}, 12),
    ]


def test_a_model_that_cannot_be_loaded_fails_its_rows_and_resume_runs_only_its_runs(
    tiny_encoders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    later = tmp_path / "later-encoder"  # not there yet: as a hub id without access offline
    comparison = distiltune.compare(
        None,
        tiny_overrides(tmp_path / "runs"),
        models=[str(tiny_encoders["distilbert"]), str(later)],
        methods="full",
        seeds=1,
        output_dir=tmp_path,
    )
    table = {row["model"]: row for row in comparison.table}
    assert table["distilbert"]["status"] == "ok"
    assert table["later-encoder"]["status"] == "failed"
    assert "could not be loaded" in table["later-encoder"]["error"] and str(later) in table["later-encoder"]["error"]
    assert not (comparison.dir / "later-encoder_full_seed42").exists()  # refused before a run directory existed
    assert str(later) in (comparison.dir / "comparison.md").read_text()
    finished = (comparison.dir / "distilbert_full_seed42" / "metrics.json").stat().st_mtime_ns

    shutil.copytree(tiny_encoders["bert"], later)  # the model becomes available
    from distiltune import training

    trained: list[str] = []
    real_train = training.train

    def recording_train(config: Any = None, overrides: Any = None, **kwargs: Any) -> Any:
        trained.append(config.run.name)  # compare hands each run its Config
        return real_train(config, overrides, **kwargs)

    monkeypatch.setattr(training, "train", recording_train)
    resumed = distiltune.compare(resume=comparison.dir)
    assert trained == ["later-encoder_full_seed42"]
    assert all(row["status"] == "ok" for row in resumed.table)
    assert (comparison.dir / "distilbert_full_seed42" / "metrics.json").stat().st_mtime_ns == finished


def test_a_method_the_model_refuses_is_skipped_before_training_and_the_defaults_never_plan_it(
    tiny_encoders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distiltune import training

    trained: list[str] = []
    real_train = training.train

    def recording_train(config: Any = None, overrides: Any = None, **kwargs: Any) -> Any:
        trained.append(config.run.name)  # compare hands each run its Config
        return real_train(config, overrides, **kwargs)

    monkeypatch.setattr(training, "train", recording_train)
    comparison = distiltune.compare(
        None,
        tiny_overrides(tmp_path / "runs"),
        models=[str(tiny_encoders["distilbert"])],
        methods="prefix,tfidf",
        seeds=1,
        output_dir=tmp_path,
    )
    assert trained == ["tfidf_seed42"]
    row = next(row for row in comparison.table if row["method"] == "prefix")
    assert row["status"] == "skipped" and "past_key_values" in row["reason"] and row["error"] is None
    assert not (comparison.dir / "distilbert_prefix_seed42").exists()
    assert "skipped: prefix tuning needs an encoder" in (comparison.dir / "comparison.md").read_text()
    assert [r.status for r in comparison.runs] == ["skipped", "completed"]

    # The default method list plans prefix for BERT (which takes past_key_values), never for DistilBERT.
    plan = new_plan(
        None,
        tiny_overrides(tmp_path / "plan"),
        None,
        1,
        models=[str(tiny_encoders["distilbert"]), str(tiny_encoders["bert"])],
    )
    planned = {(record.model, record.method) for record in plan_records(plan)}
    assert "prefix" in plan.methods and ("bert", "prefix") in planned
    assert ("distilbert", "prefix") not in planned and ("distilbert", "full") in planned
    assert all(record.status == "pending" for record in plan_records(plan))
    assert [(model, method) for model, method, _ in left_out(plan)] == [("distilbert", "prefix")]


def table_row(model: str | None, method: str, scores: list[float], speed: float | None) -> dict[str, Any]:
    """A table row as build_table makes it, from hand-made per-seed scores."""
    import statistics

    return {
        "model": model,
        "method": method,
        "f1_macro": {
            "mean": statistics.fmean(scores),
            "sd": statistics.stdev(scores) if len(scores) > 1 else None,
            "n": len(scores),
        },
        "by_seed": dict(enumerate(scores)),
        "inference_samples_per_second": {"mean": speed, "sd": None, "n": 1} if speed is not None else None,
    }


def test_the_recommendation_is_the_best_row_and_the_fastest_within_one_sd_of_it() -> None:
    table = [
        table_row("bert", "full", [0.885, 0.895, 0.905], 300.0),  # 0.895: within one sd (0.02) of the best
        table_row("roberta", "full", [0.89, 0.91, 0.93], 100.0),  # best: 0.91 ± 0.02
        table_row("distilbert", "full", [0.86, 0.88, 0.90], 600.0),  # 0.88: more than one sd below
        table_row(None, "tfidf", [0.70, 0.70, 0.70], 9000.0),
    ]
    result = recommend(table, "f1_macro")
    assert result["best"] == {"model": "roberta", "method": "full"}
    assert result["fastest"] == {"model": "bert", "method": "full"}
    assert result["line"].startswith("roberta / full has the best f1_macro (0.9100 ± 0.0200); bert / full is the")
    assert "300 against 100 samples/s at inference" in result["line"]

    # The best row is also the fastest: one clause says so.
    alone = recommend(
        [table_row("roberta", "full", [0.91], 100.0), table_row("bert", "full", [0.5], 900.0)], "f1_macro"
    )
    assert alone["best"] == alone["fastest"] == {"model": "roberta", "method": "full"}
    assert "is also the fastest within one standard deviation of it (100 samples/s" in alone["line"]

    # Lower is better for the loss.
    losses = [table_row("a", "full", [0.30, 0.32], 10.0), table_row("b", "full", [0.2, 0.2], 5.0)]
    for row in losses:
        row["loss"] = row.pop("f1_macro")
    assert recommend(losses, "loss")["best"] == {"model": "b", "method": "full"}


def test_rows_within_noise_of_the_best_are_marked_with_welchs_test() -> None:
    table = [
        table_row("best", "full", [0.90, 0.91, 0.89], None),
        table_row("close", "full", [0.89, 0.90, 0.88], None),
        table_row("far", "full", [0.70, 0.71, 0.69], None),
        table_row("few", "full", [0.10, 0.12], None),
        table_row(None, "tfidf", [0.89, 0.89, 0.89], None),
    ]
    mark_noise(table, {"metric": "f1_macro", "test": "welch-t", "alpha": 0.05, "min_seeds": 3})
    marks = {row["model"]: row["vs_best"] for row in table}
    assert marks["best"] == {"best": True}
    assert marks["close"]["within_noise"] is True and marks["close"]["p_value"] == pytest.approx(0.288, abs=1e-3)
    assert marks["far"]["within_noise"] is False and marks["far"]["p_value"] < 1e-4
    assert marks["few"] is None  # 2 seeds: not tested
    assert marks[None]["within_noise"] is True  # a baseline without spread, 0.01 below the best
    assert welch_p_value([0.5, 0.5, 0.5], [0.4, 0.4, 0.4]) == 0.0


def test_a_comparison_written_before_models_still_reports_and_resumes(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The plan as compare wrote it before the models grid: one model in the config, runs named <method>_seed<N>.
    old_runs = FIXTURES / "old_runs"
    config = yaml.safe_load((old_runs / "completed_full" / "config.yaml").read_text())
    config.pop("method")
    config["model"]["name"] = tiny_model
    config["data"]["dataset"] = str(FIXTURES / "tiny.csv")
    config["data"]["split_seed"] = 42
    plan = {"config": config, "method_options": {}, "methods": ["full", "tfidf"], "seeds": [42], "created": "x"}
    old = tmp_path / "old-comparison"
    old.mkdir()
    (old / "compare.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    shutil.copytree(old_runs / "completed_full", old / "full_seed42")
    shutil.copytree(old_runs / "completed_tfidf", old / "tfidf_seed42")

    report = distiltune.render_report(old)
    assert [(row["model"], row["method"], row["status"]) for row in report.table] == [
        ("distilbert", "full", "ok"),
        (None, "tfidf", "ok"),
    ]
    assert (old / "report.html").is_file() and report.recommendation is not None

    from distiltune import training

    trained: list[str] = []
    real_train = training.train

    def recording_train(config: Any = None, overrides: Any = None, **kwargs: Any) -> Any:
        trained.append(config.run.name)  # compare hands each run its Config
        return real_train(config, overrides, **kwargs)

    monkeypatch.setattr(training, "train", recording_train)
    resumed = distiltune.compare(resume=old, methods="untuned")
    assert trained == ["untuned_seed42"]  # the old model keeps run names without a prefix
    assert {r.name: r.reused for r in resumed.runs} == {
        "full_seed42": True,
        "untuned_seed42": False,
        "tfidf_seed42": True,
    }
    assert all(row["status"] == "ok" for row in resumed.table)


def test_model_lists_from_flags_files_and_the_config(tiny_encoders: dict[str, Path], tmp_path: Path) -> None:
    distil, bert = str(tiny_encoders["distilbert"]), str(tiny_encoders["bert"])
    models_file = tmp_path / "models.yaml"
    models_file.write_text(yaml.safe_dump([{"name": bert, "label": "b", "train": {"lr": 2e-3}}, {"name": distil}]))
    base = tiny_overrides(tmp_path / "runs")

    from_file = new_plan(None, base, "full", 1, models_config=models_file)
    assert [(m.label, m.settings) for m in from_file.models] == [
        ("b", {"train.lr": 2e-3}),
        ("distilbert", {}),
    ]
    # --models picks from the file by name or label and takes its settings.
    picked = new_plan(None, base, "full", 1, models="b", models_config=models_file)
    assert [(m.label, m.name, m.settings) for m in picked.models] == [("b", bert, {"train.lr": 2e-3})]
    # A compare config may hold the list itself.
    config_file = tmp_path / "compare.yaml"
    config_file.write_text(yaml.safe_dump({"train": {"epochs": 1}, "models": [distil, {"name": bert, "label": "b2"}]}))
    from_config = new_plan(config_file, base, "full", 1)
    assert [m.label for m in from_config.models] == ["distilbert", "b2"]
    # --model alone is a one-model list.
    single = new_plan(None, {**base, "model.name": distil}, "full", 1)
    assert [m.name for m in single.models] == [distil]

    with pytest.raises(ConfigError, match="'train.seed' cannot be set per model"):
        new_plan(None, base, "full", 1, models=[{"name": distil, "train.seed": 3}])
    with pytest.raises(ConfigError, match="Model distilbert, method full: .*unknown key 'lrr'"):
        new_plan(None, base, "full", 1, models=[{"name": distil, "train.lrr": 3}])
    with pytest.raises(ConfigError, match="Model distilbert: data.max_length 512 exceeds the model's limit"):
        new_plan(None, base, "full", 1, models=[{"name": distil, "data.max_length": 512}])
    with pytest.raises(ConfigError, match="Both --model and --models"):
        new_plan(None, {**base, "model.name": distil}, "full", 1, models=[bert])
    with pytest.raises(ConfigError, match="already in this comparison"):
        new_plan(
            None, base, "full", 1, models=[{"name": distil, "train.lr": 1e-3}, {"name": distil, "train.lr": 2e-3}]
        )
