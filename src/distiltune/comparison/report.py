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
from distiltune.comparison.plan import RESULTS_FILE, RunRecord, load_plan, load_records
from distiltune.comparison.plots import write_plots
from distiltune.comparison.table import (
    build_table,
    check_fairness,
    fairness_lines,
    markdown_table,
    run_row,
    splits_text,
    table_cells,
    table_headers,
)

logger = logging.getLogger("distiltune")

REPORT_FILE = "report.html"
MARKDOWN_FILE = "comparison.md"
PLOTS_DIR = "plots"


@dataclass
class Comparison:
    """A finished comparison: its directory, per-run records and the per-method table."""

    dir: Path
    runs: list[RunRecord]
    table: list[dict[str, Any]] = field(default_factory=list)
    fairness: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None


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
    per_run = [run_row(record, results.get(record.name)) for record in records]
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
        split=splits_text(table),
        fairness=fairness,
        fairness_lines=fairness_lines(fairness),
        runs=per_run,
        images=images,
        escape=html.escape,
    )


__all__ = ["MARKDOWN_FILE", "PLOTS_DIR", "REPORT_FILE", "Comparison", "render_html", "render_report"]
