"""The comparison report's numbers against hand-computed ones: the mean ± sd of every score column, the recommendation
line, and the data drawn in each plot.

The comparison is written by hand (compare.yaml as ``distiltune compare`` writes it, and three completed runs per
row with fixed metrics.json and history.jsonl files), so every figure below is known in advance; nothing trains.
Each row's three seeds sit at ``mean - d, mean, mean + d``, so its mean is the middle value and its sample standard
deviation is ``d``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import matplotlib.figure
import numpy as np
import pytest
import yaml
from matplotlib.container import ErrorbarContainer
from typer.testing import CliRunner

import distiltune
from distiltune import runs
from distiltune.cli import app

SEEDS = [1, 2, 3]

#: Per row (model label or None, method): its scores and costs as (mean, d), and the parameter counts. The best
#: macro F1 is a / full (0.84 ± 0.04); b / full is 0.015 below it (within one sd) and three times as fast; the
#: TF-IDF baseline is faster still but 0.05 below (outside one sd).
ROWS: dict[tuple[str | None, str], dict[str, Any]] = {
    ("a", "full"): {
        "accuracy": (0.85, 0.04),
        "precision_macro": (0.75, 0.05),
        "recall_macro": (0.66, 0.06),
        "f1_macro": (0.84, 0.04),
        "eval_samples_per_second": (100.0, 10.0),
        "train_seconds": (12.0, 2.0),
        "train_samples_per_second": (40.0, 4.0),
        "trainable_params": 1_000,
        "total_params": 5_000,
    },
    ("b", "full"): {
        "accuracy": (0.83, 0.03),
        "precision_macro": (0.60, 0.10),
        "recall_macro": (0.90, 0.02),
        "f1_macro": (0.825, 0.01),
        "eval_samples_per_second": (300.0, 10.0),
        "train_seconds": (22.0, 2.0),
        "train_samples_per_second": (20.0, 1.0),
        "trainable_params": 2_000,
        "total_params": 8_000,
    },
    (None, "tfidf"): {
        "accuracy": (0.80, 0.02),
        "precision_macro": (0.78, 0.01),
        "recall_macro": (0.77, 0.03),
        "f1_macro": (0.79, 0.02),
        "eval_samples_per_second": (5000.0, 100.0),
        "train_seconds": (1.0, 0.5),
        "train_samples_per_second": (900.0, 30.0),
        "trainable_params": 300,
        "total_params": 300,
    },
}
SCORES = ("accuracy", "precision_macro", "recall_macro", "f1_macro")

#: The mean validation curves of the encoder rows, per step, as (mean, d) over the seeds; TF-IDF evaluates once.
CURVES: dict[tuple[str | None, str], dict[int, dict[str, tuple[float, float]]]] = {
    ("a", "full"): {
        2: {"train_loss": (0.62, 0.02), "eval_loss": (0.66, 0.01), "train_accuracy": (0.70, 0.02),
            "accuracy": (0.72, 0.02), "f1_macro": (0.71, 0.03)},
        4: {"train_loss": (0.42, 0.02), "eval_loss": (0.51, 0.01), "train_accuracy": (0.86, 0.02),
            "accuracy": (0.85, 0.04), "f1_macro": (0.84, 0.04)},
    },
    ("b", "full"): {
        2: {"train_loss": (0.55, 0.03), "eval_loss": (0.60, 0.02), "train_accuracy": (0.74, 0.01),
            "accuracy": (0.76, 0.01), "f1_macro": (0.75, 0.01)},
        4: {"train_loss": (0.35, 0.01), "eval_loss": (0.45, 0.02), "train_accuracy": (0.88, 0.01),
            "accuracy": (0.83, 0.03), "f1_macro": (0.825, 0.01)},
    },
    (None, "tfidf"): {0: {"eval_loss": (0.48, 0.01), "accuracy": (0.80, 0.02), "f1_macro": (0.79, 0.02)}},
}  # fmt: skip


def per_seed(value: tuple[float, float], index: int) -> float:
    mean, d = value
    return mean + (index - 1) * d


def run_name(model: str | None, method: str, seed: int) -> str:
    return f"{model}_{method}_seed{seed}" if model else f"{method}_seed{seed}"


def row_label(model: str | None, method: str) -> str:
    return f"{model} / {method}" if model else method


@pytest.fixture
def comparison_dir(tmp_path: Path) -> Path:
    """A comparison of models a and b (full) and the TF-IDF baseline over seeds 1-3, every run completed."""
    root = tmp_path / "comparison"
    root.mkdir()
    models = [
        {"label": label, "name": f"org/{label}", "settings": {}, "run_prefix": f"{label}_", "max_length": 16,
         "refused": {}, "error": None}
        for label in ("a", "b")
    ]  # fmt: skip
    plan = {
        "config": {"data": {"dataset": "reviews.csv", "split_seed": 1}, "model": {"name": "org/a"}},
        "method_options": {},
        "methods": ["full", "tfidf"],
        "explicit_methods": ["full", "tfidf"],
        "models": models,
        "seeds": SEEDS,
        "statistics": {"metric": "f1_macro", "test": "welch-t", "alpha": 0.05, "min_seeds": 3},
        "created": "2026-01-01 00:00:00",
    }
    (root / "compare.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    for (model, method), row in ROWS.items():
        for index, seed in enumerate(SEEDS):
            run_dir = root / run_name(model, method, seed)
            (run_dir / runs.MODEL_DIR).mkdir(parents=True)
            split = {key: per_seed(row[key], index) for key in SCORES}
            split["eval_samples_per_second"] = per_seed(row["eval_samples_per_second"], index)
            metrics = {
                "method": method,
                "test": split,
                "train_seconds": per_seed(row["train_seconds"], index),
                "train_samples_per_second": per_seed(row["train_samples_per_second"], index),
                "trainable_params": row["trainable_params"],
                "total_params": row["total_params"],
                "data_fingerprint": {"train": "same-splits", "validation": "same-splits"},
            }
            runs.write_json(run_dir / runs.METRICS_FILE, metrics)
            history = [
                {"step": step, **{key: per_seed(value, index) for key, value in values.items()}}
                for step, values in CURVES[(model, method)].items()
            ]
            runs.write_jsonl(run_dir / runs.HISTORY_FILE, history)
            runs.write_json(run_dir / runs.STATUS_FILE, {"status": "completed"})
    return root


# --- the table -----------------------------------------------------------------------------------------------


def test_the_table_holds_each_rows_mean_and_sample_sd_over_its_seeds(comparison_dir: Path) -> None:
    comparison = distiltune.render_report(comparison_dir)
    table = {(row["model"], row["method"]): row for row in comparison.table}
    assert list(table) == list(ROWS)
    for key, expected in ROWS.items():
        row = table[key]
        for column in (*SCORES, "train_seconds", "train_samples_per_second"):
            mean, sd = expected[column]
            assert row[column]["mean"] == pytest.approx(mean), (key, column)
            assert row[column]["sd"] == pytest.approx(sd), (key, column)
            assert row[column]["n"] == 3
        speed_mean, speed_sd = expected["eval_samples_per_second"]
        assert row["inference_samples_per_second"]["mean"] == pytest.approx(speed_mean)
        assert row["inference_samples_per_second"]["sd"] == pytest.approx(speed_sd)
        assert row["by_seed"] == pytest.approx(
            {seed: per_seed(expected["f1_macro"], i) for i, seed in enumerate(SEEDS)}
        )
    # The same figures in comparison.json, as written.
    written = runs.read_json(comparison_dir / "comparison.json")["table"]
    assert [row["f1_macro"]["sd"] for row in written] == pytest.approx([0.04, 0.01, 0.02])


def markdown_rows(comparison_dir: Path) -> dict[str, list[str]]:
    """comparison.md's table: per row label, its cells."""
    lines = (comparison_dir / "comparison.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| Model"))
    titles = [cell.strip() for cell in header.strip("|").split("|")]
    rows = {}
    for line in lines:
        if line.startswith("| ") and not line.startswith("| Model"):
            cells = dict(zip(titles, (cell.strip() for cell in line.strip("|").split(" | ")), strict=True))
            model = cells["Model"] if cells["Model"] != "-" else None
            rows[row_label(model, cells["Method"])] = cells
    return rows


def test_the_report_prints_mean_plus_minus_sd_in_every_score_cell(comparison_dir: Path) -> None:
    distiltune.render_report(comparison_dir)
    rows = markdown_rows(comparison_dir)
    assert rows["a / full"]["Accuracy"] == "0.8500 ± 0.0400"
    assert rows["a / full"]["P (macro)"] == "0.7500 ± 0.0500"
    assert rows["a / full"]["R (macro)"] == "0.6600 ± 0.0600"
    assert rows["a / full"]["F1 (macro)"] == "0.8400 ± 0.0400"
    assert rows["b / full"]["F1 (macro)"] == "0.8250 ± 0.0100"
    assert rows["b / full"]["P (macro)"] == "0.6000 ± 0.1000"
    assert rows["tfidf"]["F1 (macro)"] == "0.7900 ± 0.0200"
    assert rows["a / full"]["Time (s)"] == "12.0 ± 2.0"
    assert rows["b / full"]["Inference samples/s"] == "300.0 ± 10.0"
    html = (comparison_dir / "report.html").read_text()
    assert "0.8400 ± 0.0400" in html and "0.8250 ± 0.0100" in html


def test_distiltune_report_prints_the_same_figures(comparison_dir: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(comparison_dir)])
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip() + "/" + line.split("│")[2].strip(): line for line in result.stdout.splitlines()
             if line.count("│") > 3 and line.split("│")[2].strip() in ("full", "tfidf")}  # fmt: skip
    assert "0.840 ± 0.040" in lines["a/full"] and "0.850 ± 0.040" in lines["a/full"]
    assert "0.825 ± 0.010" in lines["b/full"] and "0.790 ± 0.020" in lines["-/tfidf"]


# --- the recommendation --------------------------------------------------------------------------------------


RECOMMENDATION = (
    "a / full has the best f1_macro (0.8400 ± 0.0400); b / full is the fastest within one standard deviation of it "
    "(0.8250, 300 against 100 samples/s at inference)."
)


def test_the_recommendation_is_the_fastest_row_within_one_sd_of_the_best(comparison_dir: Path) -> None:
    comparison = distiltune.render_report(comparison_dir)
    # b / full: 0.015 below the best, within its sd of 0.04, and the fastest there; TF-IDF, 0.05 below, is not.
    assert comparison.recommendation == {
        "metric": "f1_macro",
        "best": {"model": "a", "method": "full"},
        "fastest": {"model": "b", "method": "full"},
        "line": RECOMMENDATION,
    }
    assert f"**Recommendation:** {RECOMMENDATION}" in (comparison_dir / "comparison.md").read_text()
    assert runs.read_json(comparison_dir / "comparison.json")["recommendation"]["line"] == RECOMMENDATION
    printed = CliRunner().invoke(app, ["report", str(comparison_dir)]).stdout
    assert f"Recommendation: {RECOMMENDATION}" in " ".join(printed.split())


# --- the plots -----------------------------------------------------------------------------------------------


def axes_data(ax: Any) -> dict[str, Any]:
    """What one matplotlib axes draws: its labelled lines (x, y), its bars (x, height) with their error bars (low,
    high), and its error-bar points (x, y, low, high)."""
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines
             if not line.get_label().startswith("_")}  # fmt: skip
    bars = [(patch.get_x() + patch.get_width() / 2, patch.get_height()) for patch in ax.patches]
    bar_errors = [
        (segment[0][1], segment[1][1]) for collection in ax.collections for segment in collection.get_segments()
    ]
    points = []
    for container in ax.containers:
        # An ax.errorbar point; a bar's error bar (in bar_errors) has no data line of its own.
        if isinstance(container, ErrorbarContainer) and container.lines[0] is not None:
            data_line, _caps, (segments, *_) = container.lines
            (x, y), ((_, low), (_, high)) = data_line.get_xydata()[0], segments.get_segments()[0]
            points.append((float(x), float(y), float(low), float(high)))
    return {"title": ax.get_title(), "lines": lines, "bars": bars, "bar_errors": bar_errors, "points": points}


@pytest.fixture
def plotted(comparison_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[dict[str, Any]]]:
    """Per plot file of the report, the data of each of its axes, taken as the figure is saved."""
    drawn: dict[str, list[dict[str, Any]]] = {}
    save = matplotlib.figure.Figure.savefig

    def recording_savefig(figure: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
        drawn[Path(path).name] = [axes_data(ax) for ax in figure.axes]
        return save(figure, path, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", recording_savefig)
    distiltune.render_report(comparison_dir)
    return drawn


def test_the_curves_are_the_mean_over_seeds_of_each_rows_history(plotted: dict[str, list[dict[str, Any]]]) -> None:
    panels = {
        "loss_curves.png": ["train_loss", "eval_loss"],
        "accuracy_curves.png": ["train_accuracy", "accuracy", "f1_macro"],
    }
    for file, keys in panels.items():
        assert len(plotted[file]) == len(keys)
        for ax, key in zip(plotted[file], keys, strict=True):
            for row in (("a", "full"), ("b", "full")):
                steps = list(CURVES[row])
                expected = [CURVES[row][step][key][0] for step in steps]
                x, y = ax["lines"][row_label(*row)]
                assert x == steps and y == pytest.approx(expected), (file, key, row)
            baseline = CURVES[(None, "tfidf")][0].get(key)
            if baseline is not None:  # one evaluation: a horizontal line at its level
                assert ax["lines"]["tfidf (one evaluation)"][1] == pytest.approx([baseline[0]] * 2), (file, key)
            else:
                assert "tfidf (one evaluation)" not in ax["lines"]


def test_the_f1_bars_are_each_rows_mean_with_its_sd(plotted: dict[str, list[dict[str, Any]]]) -> None:
    (ax,) = plotted["f1_bars.png"]
    means = [ROWS[key]["f1_macro"][0] for key in ROWS]
    sds = [ROWS[key]["f1_macro"][1] for key in ROWS]
    assert [height for _, height in ax["bars"]] == pytest.approx(means)
    expected = [(mean - sd, mean + sd) for mean, sd in zip(means, sds, strict=True)]
    assert np.array(ax["bar_errors"]) == pytest.approx(np.array(expected))


@pytest.mark.parametrize(
    ("file", "cost"),
    [
        ("accuracy_vs_params.png", lambda row: row["trainable_params"]),
        ("accuracy_vs_total_params.png", lambda row: row["total_params"]),
        ("accuracy_vs_speed.png", lambda row: row["eval_samples_per_second"][0]),
    ],
)
def test_accuracy_is_plotted_against_each_rows_cost(
    plotted: dict[str, list[dict[str, Any]]], file: str, cost: Any
) -> None:
    (ax,) = plotted[file]
    expected = []
    for row in ROWS.values():
        mean, sd = row["accuracy"]
        expected.append((float(cost(row)), mean, mean - sd, mean + sd))
    assert np.array(ax["points"]) == pytest.approx(np.array(expected))


def test_every_report_plot_was_checked(plotted: dict[str, list[dict[str, Any]]], comparison_dir: Path) -> None:
    # A new figure in the report needs its own test above.
    checked = {"loss_curves.png", "accuracy_curves.png", "f1_bars.png", "accuracy_vs_params.png",
               "accuracy_vs_total_params.png", "accuracy_vs_speed.png"}  # fmt: skip
    assert set(plotted) == checked == {path.name for path in (comparison_dir / "plots").iterdir()}


def test_the_fixture_is_what_compare_writes(comparison_dir: Path) -> None:
    # Guard on the hand-written comparison: it reports as a finished one, with every run completed and checked.
    comparison = distiltune.render_report(comparison_dir)
    assert [row["status"] for row in comparison.table] == ["ok"] * 3
    assert all(record.status == "completed" for record in comparison.runs)
    assert comparison.fairness["splits"]["identical"] is True
    assert re.search(r"Seeds 1, 2, 3", (comparison_dir / "comparison.md").read_text())
    assert json.loads((comparison_dir / "comparison.json").read_text())["seeds"] == SEEDS
