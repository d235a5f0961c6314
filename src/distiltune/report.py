"""Turn a comparison directory into its table, plots, ``comparison.json``/``.md`` and a self-contained
``report.html``. Pure with respect to training: it only reads run directories, so ``distiltune report DIR``
can rebuild the report at any time (for instance while, or after, a resumed comparison runs).
"""

from __future__ import annotations

import base64
import html
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from distiltune import runs  # noqa: E402
from distiltune.comparison import (  # noqa: E402
    RESULTS_FILE,
    Comparison,
    RunRecord,
    load_plan,
    load_records,
)
from distiltune.plots import save_figure  # noqa: E402

logger = logging.getLogger("distiltune")

REPORT_FILE = "report.html"
MARKDOWN_FILE = "comparison.md"
PLOTS_DIR = "plots"
#: The headline metrics, as (key in metrics.json, column title). P/R/F1 are macro averages over the labels.
SCORE_COLUMNS = (
    ("accuracy", "Accuracy"),
    ("precision_macro", "P (macro)"),
    ("recall_macro", "R (macro)"),
    ("f1_macro", "F1 (macro)"),
)
#: Run costs, as (key in metrics.json, column title); peak memory is absent from runs that do not record it.
COST_COLUMNS = (
    ("train_seconds", "Time (s)"),
    ("train_samples_per_second", "Samples/s"),
    ("peak_memory_mb", "Peak mem (MB)"),
    ("peak_memory_increase_mb", "Mem added by run (MB)"),
)


def render_report(compare_dir: str | Path) -> Comparison:
    """Rebuild the table, plots, comparison.json, comparison.md and report.html of a comparison."""
    compare_dir = Path(compare_dir)
    plan = load_plan(compare_dir)
    records = load_records(compare_dir, plan)
    results: dict[str, dict[str, Any]] = {}
    histories: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record.status == "completed":
            run_dir = compare_dir / record.name
            results[record.name] = runs.read_json(run_dir / runs.METRICS_FILE)
            histories[record.name] = runs.read_jsonl(run_dir / runs.HISTORY_FILE)
    table = build_table(plan["methods"], records, results)
    fairness = check_fairness(records, results)
    plots = write_plots(compare_dir / PLOTS_DIR, plan["methods"], records, table, histories)
    per_run = [_run_row(record, results.get(record.name)) for record in records]
    summary = {
        "dataset": plan["config"]["data"]["dataset"],
        "model": plan["config"]["model"]["name"],
        "methods": plan["methods"],
        "seeds": plan["seeds"],
        "split_seed": plan["config"]["data"].get("split_seed"),
        "max_length": plan["config"]["data"].get("max_length"),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    runs.write_json(
        compare_dir / RESULTS_FILE,
        {**summary, "table": table, "fairness": fairness, "runs": per_run},
    )
    (compare_dir / MARKDOWN_FILE).write_text(markdown_table(summary, table, fairness), encoding="utf-8")
    report = compare_dir / REPORT_FILE
    report.write_text(render_html(summary, table, fairness, per_run, plots), encoding="utf-8")
    logger.info("Comparison report: %s", report)
    return Comparison(dir=compare_dir, runs=records, table=table, fairness=fairness, report=report)


# --- the table --------------------------------------------------------------------------------


def evaluated_split(metrics: dict[str, Any]) -> str:
    """Test when the run has labelled test data, else validation (as in the run's predictions.jsonl)."""
    return "test" if isinstance(metrics.get("test"), dict) else "validation"


def build_table(
    methods: list[str], records: list[RunRecord], results: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per method: mean and sample standard deviation over its completed seeds."""
    table = []
    for method in methods:
        mine = [r for r in records if r.method == method]
        done = [results[r.name] for r in mine if r.name in results]
        errors = [f"seed {r.seed}: {r.error}" for r in mine if r.status == "failed"]
        if len(done) == len(mine):
            status = "ok"
        elif not done:
            status = "failed" if errors else "pending"
        else:
            status = f"partial ({len(done)}/{len(mine)})"
        splits = sorted({evaluated_split(m) for m in done})
        row: dict[str, Any] = {
            "method": method,
            "status": status,
            "seeds_completed": len(done),
            "seeds_planned": len(mine),
            "split": "/".join(splits) if splits else None,
            "error": "; ".join(errors) if errors else None,
        }
        for key, _ in SCORE_COLUMNS:
            row[key] = mean_sd([m[evaluated_split(m)].get(key) for m in done])
        for key, _ in COST_COLUMNS:
            row[key] = mean_sd([m.get(key) for m in done])
        for key in ("trainable_params", "total_params", "trainable_percent"):
            values = [m.get(key) for m in done if m.get(key) is not None]
            row[key] = values[0] if values else None
        table.append(row)
    return table


def mean_sd(values: list[Any]) -> dict[str, float | None] | None:
    """Mean and sample standard deviation (n-1) of the numbers present; sd is None for a single value."""
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numbers:
        return None
    return {
        "mean": statistics.fmean(numbers),
        "sd": statistics.stdev(numbers) if len(numbers) > 1 else None,
        "n": len(numbers),
    }


def check_fairness(records: list[RunRecord], results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Did every completed run see the same splits, and every encoder run the same token ids?"""
    splits = {name: m.get("data_fingerprint") for name, m in results.items() if m.get("data_fingerprint")}
    tokens = {name: m.get("token_fingerprint") for name, m in results.items() if m.get("token_fingerprint")}

    def verdict(fingerprints: dict[str, Any]) -> dict[str, Any]:
        distinct: dict[str, list[str]] = {}
        for name, value in fingerprints.items():
            distinct.setdefault(str(value), []).append(name)
        return {
            "identical": len(distinct) <= 1 if fingerprints else None,
            "runs_checked": len(fingerprints),
            "groups": list(distinct.values()) if len(distinct) > 1 else [],
            "fingerprint": next(iter(fingerprints.values())) if len(distinct) == 1 else None,
        }

    return {
        "splits": verdict(splits),
        "tokenization": verdict(tokens),
        "unchecked_runs": sorted(set(results) - set(splits)),
    }


def _run_row(record: RunRecord, metrics: dict[str, Any] | None) -> dict[str, Any]:
    row = record.to_dict()
    if metrics is not None:
        split = evaluated_split(metrics)
        row.update(
            {
                "split": split,
                **{key: metrics[split].get(key) for key, _ in SCORE_COLUMNS},
                **{key: metrics.get(key) for key, _ in COST_COLUMNS},
                "trainable_params": metrics.get("trainable_params"),
            }
        )
    return row


# --- formatting -------------------------------------------------------------------------------


def format_mean_sd(cell: dict[str, Any] | None, digits: int = 4) -> str:
    if not cell:
        return "-"
    mean = f"{cell['mean']:.{digits}f}" if digits else f"{cell['mean']:,.0f}"
    if cell.get("sd") is None:
        return mean
    sd = f"{cell['sd']:.{digits}f}" if digits else f"{cell['sd']:,.0f}"
    return f"{mean} ± {sd}"


def format_count(value: Any) -> str:
    if value is None:
        return "-"
    return f"{int(value):,}"


def table_cells(row: dict[str, Any], digits: int = 4) -> list[str]:
    """The display cells of one table row, in the order of :func:`table_headers`."""
    if row["seeds_completed"] == 0:
        return [row["method"], row["status"], *["-"] * (len(table_headers()) - 2)]
    status = row["status"] if row["status"] != "ok" else f"ok ({row['seeds_completed']})"
    cells = [row["method"], status]
    cells += [format_mean_sd(row[key], digits) for key, _ in SCORE_COLUMNS]
    cells.append(format_count(row["trainable_params"]))
    percent = row.get("trainable_percent")
    cells.append("-" if percent is None else f"{percent:.3g}%")
    cells.append(format_mean_sd(row["train_seconds"], digits=1))
    cells.append(format_mean_sd(row["train_samples_per_second"], digits=1))
    cells.append(format_mean_sd(row["peak_memory_mb"], digits=0))
    cells.append(format_mean_sd(row["peak_memory_increase_mb"], digits=0))
    return cells


def table_headers() -> list[str]:
    return [
        "Method",
        "Status",
        *[title for _, title in SCORE_COLUMNS],
        "Trainable params",
        "Trainable %",
        "Time (s)",
        "Samples/s",
        "Peak mem (MB)",
        "Mem added by run (MB)",
    ]


def markdown_table(summary: dict[str, Any], table: list[dict[str, Any]], fairness: dict[str, Any]) -> str:
    headers = table_headers()
    lines = [
        f"# Comparison: {summary['model']} on {summary['dataset']}",
        "",
        f"Seeds {', '.join(map(str, summary['seeds']))}; scores are mean ± sample sd over seeds on the "
        f"{_splits_text(table)} split. Generated {summary['generated']}.",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(headers))) + "|",
    ]
    for row in table:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in table_cells(row)) + " |")
    failed = [row for row in table if row["error"]]
    if failed:
        lines += ["", "## Failed runs", ""]
        lines += [f"- **{row['method']}**: {row['error']}" for row in failed]
    lines += ["", "## Fairness", "", *(f"- {line}" for line in fairness_lines(fairness)), ""]
    return "\n".join(lines)


def fairness_lines(fairness: dict[str, Any]) -> list[str]:
    lines = []
    for key, what in (("splits", "train/validation/test splits"), ("tokenization", "token ids (encoder runs)")):
        check = fairness[key]
        if check["identical"] is None:
            lines.append(f"{what}: no run recorded a fingerprint.")
        elif check["identical"]:
            lines.append(f"{what}: identical across {check['runs_checked']} runs ({_digest(check['fingerprint'])}).")
        else:
            groups = " vs ".join("[" + ", ".join(group) + "]" for group in check["groups"])
            lines.append(f"{what}: DIFFER between runs: {groups}.")
    if fairness["unchecked_runs"]:
        lines.append(f"not checked (no fingerprint recorded): {', '.join(fairness['unchecked_runs'])}.")
    return lines


def _digest(fingerprint: Any) -> str:
    if isinstance(fingerprint, dict):
        return ", ".join(f"{split} {value}" for split, value in fingerprint.items() if value)
    return str(fingerprint)


def _splits_text(table: list[dict[str, Any]]) -> str:
    splits = sorted({row["split"] for row in table if row["split"]})
    return "/".join(splits) if splits else "evaluated"


# --- plots ------------------------------------------------------------------------------------


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


# --- HTML -------------------------------------------------------------------------------------


def render_html(
    summary: dict[str, Any],
    table: list[dict[str, Any]],
    fairness: dict[str, Any],
    per_run: list[dict[str, Any]],
    plots: dict[str, Path],
) -> str:
    """One file: inline CSS, plots as base64 data URIs, nothing fetched from anywhere."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("distiltune", "templates"), autoescape=select_autoescape(["html", "j2"])
    )
    template = environment.get_template("report.html.j2")
    images = [
        {"title": title, "data": base64.b64encode(path.read_bytes()).decode("ascii"), "file": path.name}
        for title, path in plots.items()
    ]
    best = max((row for row in table if row["f1_macro"]), key=lambda row: row["f1_macro"]["mean"], default=None)
    return template.render(
        summary=summary,
        headers=table_headers(),
        rows=[{"cells": table_cells(row), **row} for row in table],
        best=best,
        split=_splits_text(table),
        fairness=fairness,
        fairness_lines=fairness_lines(fairness),
        runs=per_run,
        images=images,
        escape=html.escape,
    )


__all__ = ["build_table", "check_fairness", "mean_sd", "render_report"]
