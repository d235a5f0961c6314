"""What a search leaves in its tune directory, rebuilt from the study's storage (so every worker's copy covers
every worker's trials): ``trials.csv``, ``best.yaml``, ``tune.json``, ``plots/*.png`` and ``report.html``."""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import yaml

from distiltune import runs
from distiltune.config import load_config
from distiltune.plots import save_figure

logger = logging.getLogger("distiltune")

TRIALS_CSV = "trials.csv"
BEST_CONFIG = "best.yaml"
SUMMARY_FILE = "tune.json"
REPORT_FILE = "report.html"
PLOTS_DIR = "plots"
#: The study user attribute holding the base config and space every worker must agree on (see search.py).
STUDY_ATTR = "distiltune"
STATES = ("complete", "pruned", "fail", "running", "waiting")


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One plain dict per trial of ``study``, in trial-number order."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        intermediate = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name.lower(),
                "value": trial.value,
                "params": dict(trial.params),
                "intermediate_values": intermediate,
                "scores": attrs.get("scores") or {},
                "metric": attrs.get("metric"),
                "pruned_at": attrs.get("pruned_at"),
                "error": attrs.get("error"),
                "duration_s": round(duration, 1) if duration is not None else None,
                "run_dir": attrs.get("run_dir"),
                "worker": attrs.get("worker"),
            }
        )
    return rows


def best_row(rows: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    """The best completed trial (ties: the earliest), or None before any trial completed."""
    done = [row for row in rows if row["state"] == "complete" and row["value"] is not None]
    if not done:
        return None
    sign = -1.0 if direction == "minimize" else 1.0
    return max(done, key=lambda row: (sign * row["value"], -row["number"]))


def best_config_dict(study: Any, params: dict[str, Any], output_dir: str) -> dict[str, Any]:
    """The full config of a trial with ``params``: the study's base config plus the trial's values, with the run
    section a fresh ``distiltune train`` accepts (``output_dir``, a generated name)."""
    flat = dict(study.user_attrs[STUDY_ATTR]["config"])
    config = load_config(None, {**flat, **params, "run.output_dir": output_dir, "run.name": None})
    return config.to_dict()


def write_outputs(
    tune_dir: Path, study: Any, settings: dict[str, Any], output_dir: str, full: bool = True
) -> dict[str, Any]:
    """Write trials.csv, best.yaml and tune.json; with ``full`` also the plots and report.html. Returns the summary."""
    rows = trial_rows(study)
    direction = settings["direction"]
    best = best_row(rows, direction)
    metric = next((row["metric"] for row in rows if row["metric"]), None) or settings.get("metric") or "metric"
    counts = {state: sum(row["state"] == state for row in rows) for state in STATES}
    _write_csv(tune_dir / TRIALS_CSV, rows)
    best_path = tune_dir / BEST_CONFIG
    if best is not None:
        config = best_config_dict(study, best["params"], output_dir)
        header = (
            f"# Best trial {best['number']} of study '{settings['study']}': validation {metric} {best['value']:.4f}.\n"
            f"# distiltune train --config {BEST_CONFIG} repeats it (searched: {', '.join(best['params'])}).\n"
        )
        _write_text(best_path, header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    previous = runs.read_json(tune_dir / SUMMARY_FILE) if (tune_dir / SUMMARY_FILE).is_file() else {}
    importances = param_importances(study, counts["complete"]) if full else previous.get("importances", {})
    summary = {
        **settings,
        "metric": metric,
        "counts": counts,
        "best": best,
        "best_config": str(best_path) if best is not None else None,
        "importances": importances,
        "updated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "trials": rows,
    }
    if full:
        plots = write_plots(tune_dir / PLOTS_DIR, rows, metric, direction, importances)
        summary["plots"] = [str(path.relative_to(tune_dir)) for path in plots]
        _write_text(tune_dir / REPORT_FILE, render_html(summary, plots))
    _write_text(tune_dir / SUMMARY_FILE, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def param_importances(study: Any, completed: int) -> dict[str, float]:
    """optuna.importance's default evaluator (PED-ANOVA in optuna 5) over the completed trials; empty with fewer than
    two completed trials, where no importance means anything."""
    if completed < 2:
        return {}
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "too few trials" and experimental-feature warnings
        try:
            importances = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError) as err:
            logger.warning("Parameter importances not computed: %s", err)
            return {}
    return {key: round(float(value), 4) for key, value in importances.items() if math.isfinite(value)}


def write_plots(
    out_dir: Path, rows: list[dict[str, Any]], metric: str, direction: str, importances: dict[str, float]
) -> list[Path]:
    """optimization_history.png, intermediate_values.png and (when there are importances) param_importances.png."""
    import matplotlib.pyplot as plt  # deferred: matplotlib takes a second to import
    from matplotlib.ticker import MaxNLocator

    out_dir.mkdir(exist_ok=True)
    written = []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    done = [row for row in rows if row["state"] == "complete" and row["value"] is not None]
    pruned = [row for row in rows if row["state"] == "pruned" and row["intermediate_values"]]
    if done:
        ax.plot([r["number"] for r in done], [r["value"] for r in done], "o", color="C0", label="completed trial")
        best_so_far, best = [], None
        for row in sorted(done, key=lambda r: r["number"]):
            better = best is None or (row["value"] < best if direction == "minimize" else row["value"] > best)
            best = row["value"] if better else best
            best_so_far.append((row["number"], best))
        ax.step(*zip(*best_so_far, strict=True), where="post", color="C1", label="best so far")
    if pruned:
        ax.plot(
            [r["number"] for r in pruned],
            [r["intermediate_values"][-1] for r in pruned],
            "x",
            color="0.5",
            label="pruned (last evaluation)",
        )
    ax.set(xlabel="trial", ylabel=f"validation {metric}", title="Optimisation history")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    save_figure(fig, [ax], out_dir / "optimization_history.png")
    written.append(out_dir / "optimization_history.png")

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for row in rows:
        values = row["intermediate_values"]
        if not values:
            continue
        steps = list(range(1, len(values) + 1))
        if row["state"] == "pruned":
            ax.plot(steps, values, "--x", color="0.5", linewidth=1)
        else:
            ax.plot(steps, values, "-o", color="C0", alpha=0.6, markersize=3, linewidth=1)
    ax.plot([], [], "-o", color="C0", markersize=3, label="completed")
    ax.plot([], [], "--x", color="0.5", label="pruned")
    ax.set(xlabel="evaluation (epoch)", ylabel=f"validation {metric}", title="Learning curves of the trials")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    save_figure(fig, [ax], out_dir / "intermediate_values.png")
    written.append(out_dir / "intermediate_values.png")

    if importances:
        names = list(importances)[::-1]
        fig, ax = plt.subplots(figsize=(6.4, 1.2 + 0.45 * len(names)))
        ax.barh(names, [importances[name] for name in names], color="C0")
        ax.set(xlabel="importance (share of the variation explained)", title="Hyperparameter importance")
        save_figure(fig, [ax], out_dir / "param_importances.png")
        written.append(out_dir / "param_importances.png")
    return written


def render_html(summary: dict[str, Any], plots: list[Path]) -> str:
    """One self-contained page (inline CSS, base64 images)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("distiltune", "templates"), autoescape=select_autoescape(["html", "j2"])
    )
    images = [{"file": path.name, "data": base64.b64encode(path.read_bytes()).decode("ascii")} for path in plots]
    keys = list(dict.fromkeys(key for row in summary["trials"] for key in row["params"]))
    return environment.get_template("tune_report.html.j2").render(
        summary=summary, images=images, keys=keys, fmt=_format_value
    )


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    keys = list(dict.fromkeys(key for row in rows for key in row["params"]))
    score_keys = list(
        dict.fromkeys(f"{split}_{name}" for row in rows for split, scores in row["scores"].items() for name in scores)
    )
    records = []
    for row in rows:
        record: dict[str, Any] = {"number": row["number"], "state": row["state"], "value": row["value"]}
        record.update({key: row["params"].get(key) for key in keys})
        flat_scores = {f"{split}_{name}": v for split, scores in row["scores"].items() for name, v in scores.items()}
        record.update({key: flat_scores.get(key) for key in score_keys})
        record.update(
            {
                "evaluations": len(row["intermediate_values"]),
                "pruned_at": row["pruned_at"],
                "duration_s": row["duration_s"],
                "run_dir": row["run_dir"],
                "worker": row["worker"],
                "error": row["error"],
            }
        )
        records.append(record)
    columns = ["number", "state", "value", *keys, *score_keys, "evaluations", "pruned_at", "duration_s"]
    columns += ["run_dir", "worker", "error"]
    _write_text(path, pd.DataFrame(records, columns=columns).to_csv(index=False))


def _write_text(path: Path, text: str) -> None:
    """Atomic, and safe with several workers writing the same file (each has its own temp file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.4f}".rstrip("0").rstrip(".")
    return "-" if value is None else str(value)


__all__ = [
    "BEST_CONFIG",
    "REPORT_FILE",
    "SUMMARY_FILE",
    "TRIALS_CSV",
    "best_config_dict",
    "best_row",
    "param_importances",
    "trial_rows",
    "write_outputs",
    "write_plots",
]
