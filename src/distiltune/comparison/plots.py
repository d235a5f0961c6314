"""The comparison's figures: training and validation curves of every model and method overlaid, F1 bars grouped by
model, and accuracy against trainable parameters, total parameters and inference speed.

Every row of the table (a model and method) keeps one look in every figure: with several models the colour is the
model and the line style the method; with one model the colour is the method.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from distiltune.comparison.plan import RunRecord  # noqa: E402
from distiltune.comparison.statistics import row_name  # noqa: E402
from distiltune.comparison.table import INFERENCE_SPEED  # noqa: E402
from distiltune.plots import save_figure  # noqa: E402

#: History keys averaged over seeds for the curves.
CURVE_KEYS = ("train_loss", "eval_loss", "train_accuracy", "accuracy", "f1_macro")
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def write_plots(
    out_dir: Path,
    records: list[RunRecord],
    table: list[dict[str, Any]],
    histories: dict[str, list[dict[str, Any]]],
) -> dict[str, Path]:
    out_dir.mkdir(exist_ok=True)
    looks = row_looks(table)
    averaged = {
        row_name(row): average_histories(
            [
                histories[r.name]
                for r in records
                if r.model == row["model"] and r.method == row["method"] and r.name in histories
            ]
        )
        for row in table
    }
    # Rows without a completed run stay in (empty) so that each row keeps the same look in every plot.
    return {
        "Training and validation loss (mean over seeds)": plot_overlaid_curves(
            averaged,
            out_dir / "loss_curves.png",
            [("train_loss", "training loss"), ("eval_loss", "validation loss")],
            looks,
        ),
        "Training and validation accuracy, validation macro F1 (mean over seeds)": plot_overlaid_curves(
            averaged,
            out_dir / "accuracy_curves.png",
            [
                ("train_accuracy", "training accuracy (training batches)"),
                ("accuracy", "validation accuracy"),
                ("f1_macro", "validation macro F1"),
            ],
            looks,
        ),
        "Macro F1 per model and method (error bars: sd over seeds)": plot_f1_bars(table, out_dir / "f1_bars.png"),
        "Accuracy against trainable parameters": plot_accuracy_against(
            table, out_dir / "accuracy_vs_params.png", "trainable_params", "trainable parameters", looks
        ),
        "Accuracy against total parameters": plot_accuracy_against(
            table, out_dir / "accuracy_vs_total_params.png", "total_params", "total parameters", looks
        ),
        "Accuracy against inference speed": plot_accuracy_against(
            table, out_dir / "accuracy_vs_speed.png", INFERENCE_SPEED, "inference samples/s", looks
        ),
    }


def row_looks(table: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Colour, line style and marker of each row (by :func:`row_name`)."""
    models = list(dict.fromkeys(row["model"] for row in table if row["model"] is not None))
    methods = list(dict.fromkeys(row["method"] for row in table))
    looks = {}
    for index, row in enumerate(table):
        method_index = methods.index(row["method"])
        if len(models) > 1:
            colour_index = models.index(row["model"]) if row["model"] is not None else len(models) + method_index
        else:
            colour_index = index
        looks[row_name(row)] = {
            "color": f"C{colour_index % 10}",
            "linestyle": LINE_STYLES[method_index % len(LINE_STYLES)] if len(models) > 1 else "-",
            "marker": MARKERS[method_index % len(MARKERS)],
        }
    return looks


def average_histories(histories: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One history whose values are the mean over seeds at each step (runs of one row share their steps)."""
    by_step: dict[int, list[dict[str, Any]]] = {}
    for history in histories:
        for row in history:
            by_step.setdefault(int(row["step"]), []).append(row)
    averaged = []
    for step in sorted(by_step):
        rows = by_step[step]
        out: dict[str, Any] = {"step": step}
        for key in CURVE_KEYS:
            values = [row[key] for row in rows if isinstance(row.get(key), int | float)]
            out[key] = statistics.fmean(values) if values else None
        averaged.append(out)
    return averaged


def plot_overlaid_curves(
    histories: dict[str, list[dict[str, Any]]],
    path: Path,
    panels: list[tuple[str, str]],
    looks: dict[str, dict[str, str]] | None = None,
) -> Path:
    """One panel per history key, one curve per row. A row with a single evaluation (a baseline that does not
    train, or TF-IDF) is a dotted horizontal line: its level is the reference the curves should beat."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 4.4), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for index, (name, rows) in enumerate(histories.items()):
            look = (looks or {}).get(name, {"color": f"C{index % 10}", "linestyle": "-", "marker": "o"})
            points = [(row["step"], row[key]) for row in rows if row.get(key) is not None]
            if len(rows) == 1 and points:
                # The marker tells apart the methods of one model (same colour) when each evaluated once.
                ax.axhline(
                    points[0][1],
                    color=look["color"],
                    linestyle=":",
                    marker=look["marker"],
                    markersize=4,
                    label=f"{name} (one evaluation)",
                )
            elif points:
                ax.plot(
                    *zip(*points, strict=True),
                    color=look["color"],
                    linestyle=look["linestyle"],
                    marker=look["marker"],
                    label=name,
                    markersize=3,
                )
        ax.set(xlabel="step", title=title)
        if key not in ("train_loss", "eval_loss"):
            ax.set_ylim(0, 1.02)
    save_figure(fig, axes[0], path)
    return path


def plot_f1_bars(table: list[dict[str, Any]], path: Path) -> Path:
    """Macro F1 bars with sd error bars, grouped by model (methods without an encoder in a group of their own);
    a method keeps its colour in every group."""
    rows = [row for row in table if row["f1_macro"]]
    groups = list(dict.fromkeys(row["model"] for row in rows))
    methods = list(dict.fromkeys(row["method"] for row in table))
    colours = {method: f"C{index % 10}" for index, method in enumerate(methods)}
    fig, ax = plt.subplots(figsize=(max(5.2, 0.55 * len(rows) + 0.8 * len(groups) + 2), 4.4))
    position, centres, labelled = 0.0, [], set()
    for group in groups:
        members = [row for row in rows if row["model"] == group]
        start = position
        for row in members:
            mean, sd = row["f1_macro"]["mean"], row["f1_macro"]["sd"] or 0.0
            label = row["method"] if row["method"] not in labelled else None
            labelled.add(row["method"])
            ax.bar(position, mean, yerr=sd, capsize=3, color=colours[row["method"]], label=label, width=0.8)
            ax.text(position, mean + sd + 0.01, f"{mean:.3f}", ha="center", va="bottom", fontsize=7)
            position += 1.0
        centres.append((start + position - 1.0) / 2)
        position += 0.8  # a gap between models
    ax.set_xticks(centres, [group if group is not None else "no encoder" for group in groups], rotation=15)
    ax.set(ylabel="macro F1", ylim=(0, 1.1), title="Macro F1 by model and method (mean ± sd over seeds)")
    ax.grid(axis="y", alpha=0.3)
    if labelled:
        ax.legend(fontsize=8, ncols=min(4, len(labelled)))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_accuracy_against(
    table: list[dict[str, Any]], path: Path, key: str, what: str, looks: dict[str, dict[str, str]]
) -> Path:
    """Accuracy (mean ± sd over seeds) of each row against one of its costs, on a log axis."""
    fig, ax = plt.subplots(figsize=(6.6, 4.4))
    for row in table:
        value = row.get(key)
        if isinstance(value, dict):
            value = value["mean"]
        if not row["accuracy"] or value is None:
            continue
        # A log axis has no 0: rows that train nothing sit at 1 and say so in their label.
        x = max(1.0, float(value))
        name = row_name(row)
        label = name if value else f"{name} (0)"
        look = looks[name]
        ax.errorbar(
            x,
            row["accuracy"]["mean"],
            yerr=row["accuracy"]["sd"] or 0.0,
            fmt=look["marker"],
            color=look["color"],
            capsize=3,
        )
        ax.annotate(label, (x, row["accuracy"]["mean"]), textcoords="offset points", xytext=(5, 5), fontsize=7)
    ax.set_xscale("log")
    ax.margins(x=0.2)  # room for the labels of the outermost points
    ax.set(xlabel=f"{what} (log scale)", ylabel="accuracy", ylim=(0, 1.05))
    ax.set_title(f"Accuracy against {what}")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = [
    "average_histories",
    "plot_accuracy_against",
    "plot_f1_bars",
    "plot_overlaid_curves",
    "row_looks",
    "write_plots",
]
