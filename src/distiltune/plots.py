"""Matplotlib (Agg) figures from run files: pure functions that read JSON and write PNGs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from distiltune import runs  # noqa: E402
from distiltune.tasks.record import RunMetrics  # noqa: E402


def plot_run(run_dir: Path) -> list[Path]:
    """Loss curves, accuracy/F1 curves and the confusion matrix of one run into ``plots/``."""
    out_dir = run_dir / runs.PLOTS_DIR
    out_dir.mkdir(exist_ok=True)
    history = runs.read_jsonl(run_dir / runs.HISTORY_FILE)
    metrics = RunMetrics.read(run_dir / runs.METRICS_FILE)
    written = [
        plot_loss_curves({"": history}, out_dir / "loss.png"),
        plot_metric_curves({"": history}, out_dir / "accuracy_f1.png"),
    ]
    split = metrics.evaluated_split
    evaluation = metrics.splits().get(split)
    if evaluation is not None:
        if evaluation.confusion_matrix is not None:  # a task without one (multi-label) draws no matrix
            matrix = evaluation.confusion_matrix
            written.append(
                plot_confusion_matrix(
                    matrix.matrix, matrix.labels, out_dir / "confusion_matrix.png", title=f"Confusion matrix ({split})"
                )
            )
        curves = reliability_curves(metrics, split)
        if curves:
            written.append(
                plot_reliability_diagram(curves, out_dir / "reliability.png", title=f"Reliability diagram ({split})")
            )
    return written


def reliability_curves(metrics: RunMetrics, split: str) -> dict[str, dict[str, Any]]:
    """The reliability tables metrics.json holds for ``split``: the calibrated model's, and with a fitted
    temperature also the model's at T = 1 (empty for runs written before calibration metrics existed)."""
    evaluation = metrics.splits()[split]
    if evaluation.calibration is None:
        return {}
    after = evaluation.calibration.reliability.to_json()
    before = (evaluation.before_calibration or {}).get("reliability")
    if before is None:
        return {"": after}
    temperature = metrics.temperature.value if metrics.temperature is not None else 1.0
    return {"before (T = 1)": before, f"after (T = {temperature:.2f})": after}


def plot_loss_curves(histories: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for index, (name, rows) in enumerate(histories.items()):
        color = f"C{index}"
        label = f"{name} " if name else ""
        train = [(r["step"], r["train_loss"]) for r in rows if r.get("train_loss") is not None]
        valid = [(r["step"], r["eval_loss"]) for r in rows if r.get("eval_loss") is not None]
        if train:
            ax.plot(*zip(*train, strict=True), "-o", color=color, label=f"{label}train", markersize=3)
        if valid:
            ax.plot(*zip(*valid, strict=True), "--s", color=color, label=f"{label}validation", markersize=3)
    ax.set(xlabel="step", ylabel="loss", title="Training and validation loss")
    save_figure(fig, [ax], path)
    return path


#: History keys of the accuracy chart and how each is drawn and named.
METRIC_CURVES = {
    "train_accuracy": ("-.^", "training accuracy"),
    "accuracy": ("-o", "validation accuracy"),
    "f1_macro": ("--s", "validation macro F1"),
}


def plot_metric_curves(
    histories: dict[str, list[dict[str, Any]]],
    path: Path,
    metrics: tuple[str, ...] = ("train_accuracy", "accuracy", "f1_macro"),
) -> Path:
    """Training accuracy (over the training batches between two evaluations) next to the validation accuracy and
    macro F1: a training curve far above the validation one is overfitting."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for index, (name, rows) in enumerate(histories.items()):
        for metric in metrics:
            points = [(r["step"], r[metric]) for r in rows if r.get(metric) is not None]
            if points:
                style, title = METRIC_CURVES.get(metric, ("-", metric))
                label = f"{name} {title}".strip()
                ax.plot(*zip(*points, strict=True), style, color=f"C{index}", label=label, markersize=3)
    ax.set(xlabel="step", ylabel="score", title="Training and validation accuracy, validation F1", ylim=(0, 1.02))
    save_figure(fig, [ax], path)
    return path


def plot_confusion_matrix(matrix: list[list[int]], labels: list[str], path: Path, title: str) -> Path:
    size = max(3.5, 0.7 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="gold", title=title)
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_figure(fig: Any, axes: Iterable[Any], path: Path) -> None:
    """The finish every distiltune chart shares: light grid, a legend where anything is labelled, PNG at 110 dpi."""
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability_diagram(
    curves: dict[str, dict[str, Any]], path: Path, title: str = "Reliability diagram"
) -> Path:
    """Accuracy against mean confidence per confidence bin, one line per entry of ``curves`` (e.g. before and after
    temperature scaling), with the diagonal of perfect calibration, and below it the number of rows per bin.

    Each curve is :func:`distiltune.tasks.calibration.reliability_bins` output (``edges``, ``count``, ``confidence``,
    ``accuracy``), as stored under ``calibration.reliability`` in metrics.json; empty bins are skipped.
    """
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.2, 6.0), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], ":", color="gray", label="perfect calibration")
    bar_share = 0.8 / max(1, len(curves))
    for index, (name, bins) in enumerate(curves.items()):
        edges = bins["edges"]
        width = edges[1] - edges[0]
        filled = [i for i, n in enumerate(bins["count"]) if n > 0]
        top.plot(
            [bins["confidence"][i] for i in filled],
            [bins["accuracy"][i] for i in filled],
            "-o",
            color=f"C{index}",
            label=name,
            markersize=4,
        )
        left = [edges[i] + width * (0.1 + index * bar_share) for i in range(len(bins["count"]))]
        bottom.bar(left, bins["count"], width=width * bar_share, align="edge", color=f"C{index}", alpha=0.7)
    top.set(ylabel="accuracy", title=title, xlim=(0, 1), ylim=(0, 1.02))
    bottom.set(xlabel="confidence (top-label probability)", ylabel="rows")
    save_figure(fig, [top, bottom], path)
    return path
