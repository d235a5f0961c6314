"""The comparison's figures: overlaid training curves, F1 bars and accuracy against trainable parameters."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from distiltune.comparison.plan import RunRecord  # noqa: E402
from distiltune.plots import save_figure  # noqa: E402


def write_plots(
    out_dir: Path,
    methods: list[str],
    records: list[RunRecord],
    table: list[dict[str, Any]],
    histories: dict[str, list[dict[str, Any]]],
) -> dict[str, Path]:
    out_dir.mkdir(exist_ok=True)
    averaged = {
        method: average_histories([histories[r.name] for r in records if r.method == method and r.name in histories])
        for method in methods
    }
    # Methods without a completed run stay in (empty) so that each method keeps the same colour in every plot.
    return {
        "Training and validation loss (mean over seeds)": plot_overlaid_curves(
            averaged,
            out_dir / "loss_curves.png",
            [("train_loss", "training loss"), ("eval_loss", "validation loss")],
        ),
        "Validation accuracy and macro F1 (mean over seeds)": plot_overlaid_curves(
            averaged,
            out_dir / "validation_curves.png",
            [("accuracy", "validation accuracy"), ("f1_macro", "validation macro F1")],
        ),
        "Macro F1 per method (error bars: sd over seeds)": plot_f1_bars(table, out_dir / "f1_bars.png"),
        "Accuracy against trainable parameters": plot_accuracy_vs_parameters(
            table, out_dir / "accuracy_vs_params.png"
        ),
    }


def average_histories(histories: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One history whose values are the mean over seeds at each step (runs of one method share their steps)."""
    by_step: dict[int, list[dict[str, Any]]] = {}
    for history in histories:
        for row in history:
            by_step.setdefault(int(row["step"]), []).append(row)
    averaged = []
    for step in sorted(by_step):
        rows = by_step[step]
        out: dict[str, Any] = {"step": step}
        for key in ("train_loss", "eval_loss", "accuracy", "f1_macro"):
            values = [row[key] for row in rows if isinstance(row.get(key), int | float)]
            out[key] = statistics.fmean(values) if values else None
        averaged.append(out)
    return averaged


def plot_overlaid_curves(
    histories: dict[str, list[dict[str, Any]]], path: Path, panels: list[tuple[str, str]]
) -> Path:
    """One panel per history key, one curve per method. A method with a single evaluation (a baseline that
    does not train, or TF-IDF) is a dotted horizontal line: its level is the reference the curves should beat."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 4.2), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for index, (method, rows) in enumerate(histories.items()):
            points = [(row["step"], row[key]) for row in rows if row.get(key) is not None]
            if len(rows) == 1 and points:
                ax.axhline(points[0][1], color=f"C{index}", linestyle=":", label=f"{method} (one evaluation)")
            elif points:
                ax.plot(*zip(*points, strict=True), "-o", color=f"C{index}", label=method, markersize=3)
        ax.set(xlabel="step", title=title)
        if key not in ("train_loss", "eval_loss"):
            ax.set_ylim(0, 1.02)
    save_figure(fig, axes[0], path)
    return path


def plot_f1_bars(table: list[dict[str, Any]], path: Path) -> Path:
    colors = {row["method"]: f"C{index}" for index, row in enumerate(table)}
    rows = [row for row in table if row["f1_macro"]]
    fig, ax = plt.subplots(figsize=(max(4.8, 0.9 * len(rows) + 2), 4.2))
    means = [row["f1_macro"]["mean"] for row in rows]
    errors = [row["f1_macro"]["sd"] or 0.0 for row in rows]
    positions = range(len(rows))
    ax.bar(positions, means, yerr=errors, capsize=4, color=[colors[row["method"]] for row in rows])
    ax.set_xticks(list(positions), [row["method"] for row in rows], rotation=20, ha="right")
    for x, mean in zip(positions, means, strict=True):
        ax.text(x, mean + 0.01, f"{mean:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set(ylabel="macro F1", ylim=(0, 1.08), title="Macro F1 (mean ± sd over seeds)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_accuracy_vs_parameters(table: list[dict[str, Any]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for index, row in enumerate(table):
        if not row["accuracy"] or row["trainable_params"] is None:
            continue
        # A log axis has no 0: methods that train nothing sit at 1 and say so in their label.
        x = max(1, int(row["trainable_params"]))
        label = row["method"] if row["trainable_params"] else f"{row['method']} (0 trained)"
        ax.errorbar(
            x, row["accuracy"]["mean"], yerr=row["accuracy"]["sd"] or 0.0, fmt="o", color=f"C{index}", capsize=3
        )
        ax.annotate(label, (x, row["accuracy"]["mean"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xscale("log")
    ax.margins(x=0.2)  # room for the labels of the outermost points
    ax.set(xlabel="trainable parameters (log scale)", ylabel="accuracy", ylim=(0, 1.05))
    ax.set_title("Accuracy against trainable parameters")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["average_histories", "plot_accuracy_vs_parameters", "plot_f1_bars", "plot_overlaid_curves", "write_plots"]
