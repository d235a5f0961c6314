"""Turn a comparison directory into its table, plots, ``comparison.json``/``.md`` and a self-contained
``report.html``. Pure with respect to training: it only reads run directories, so ``distiltune report DIR``
can rebuild the report at any time (for instance while, or after, a resumed comparison runs).
"""

from __future__ import annotations

import base64
import html
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distiltune import runs
from distiltune.comparison.plan import RESULTS_FILE, RunRecord, left_out, load_plan, load_records
from distiltune.comparison.plots import write_plots
from distiltune.comparison.statistics import mark_noise, recommend, significance_text
from distiltune.comparison.table import (
    LABEL_COLUMNS,
    build_table,
    check_fairness,
    fairness_lines,
    markdown_table,
    run_row,
    splits_text,
    table_cells,
    table_headers,
)
from distiltune.tasks.record import RunMetrics

logger = logging.getLogger("distiltune")

REPORT_FILE = "report.html"
MARKDOWN_FILE = "comparison.md"
PLOTS_DIR = "plots"


@dataclass
class Comparison:
    """A finished comparison: its directory, per-run records, the per-model-and-method table and the
    recommendation."""

    dir: Path
    runs: list[RunRecord]
    table: list[dict[str, Any]] = field(default_factory=list)
    fairness: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None
    recommendation: dict[str, Any] | None = None


def render_report(compare_dir: str | Path) -> Comparison:
    """Rebuild the table, plots, comparison.json, comparison.md and report.html of a comparison."""
    compare_dir = Path(compare_dir)
    plan = load_plan(compare_dir)
    records = load_records(compare_dir, plan)
    results: dict[str, RunMetrics] = {}
    histories: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record.status == "completed":
            run_dir = compare_dir / record.name
            results[record.name] = RunMetrics.read(run_dir / runs.METRICS_FILE)
            histories[record.name] = runs.read_jsonl(run_dir / runs.HISTORY_FILE)
    table = build_table(plan, records, results)
    mark_noise(table, plan.statistics)
    recommendation = recommend(table, plan.statistics.metric)
    fairness = check_fairness(records, results)
    plots = write_plots(compare_dir / PLOTS_DIR, records, table, histories)
    per_run = [run_row(record, results.get(record.name)) for record in records]
    summary = {
        "dataset": plan.config.data.dataset,
        "models": [
            entry.model_dump(include={"label", "name", "settings", "max_length", "error"}) for entry in plan.models
        ],
        "methods": plan.methods,
        "seeds": plan.seeds,
        "split_seed": plan.config.data.split_seed,
        "statistics": plan.statistics.model_dump(),
        "recommendation": recommendation,
        "left_out": [{"model": m, "method": method, "reason": why} for m, method, why in left_out(plan)],
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
    return Comparison(
        dir=compare_dir,
        runs=records,
        table=table,
        fairness=fairness,
        report=report,
        recommendation=recommendation,
    )


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
    return template.render(
        summary=summary,
        headers=table_headers(),
        label_columns=LABEL_COLUMNS,
        rows=[{"cells": table_cells(row), **row} for row in table],
        split=splits_text(table),
        significance=significance_text(summary["statistics"]),
        fairness=fairness,
        fairness_lines=fairness_lines(fairness),
        runs=per_run,
        images=images,
        escape=html.escape,
    )


__all__ = ["MARKDOWN_FILE", "PLOTS_DIR", "REPORT_FILE", "Comparison", "render_html", "render_report"]
