"""The comparison table: one row per model and method with mean ± sd over its seeds, the fairness check, and the
table as cells, Markdown and fairness lines."""

from __future__ import annotations

import statistics
from typing import Any

from distiltune.comparison.plan import ComparePlan, RunRecord, uses_encoder
from distiltune.comparison.statistics import noise_cell, row_name, significance_text
from distiltune.tasks.record import RunMetrics

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
#: Inference throughput: the evaluated split's ``eval_samples_per_second`` in metrics.json.
INFERENCE_SPEED = "inference_samples_per_second"
#: Columns shown left-aligned: the row's name and status.
LABEL_COLUMNS = 3


def evaluated_split(metrics: RunMetrics) -> str:
    """Test when the run has labelled test data, else validation (as in the run's predictions.jsonl)."""
    return metrics.evaluated_split


def table_keys(plan: ComparePlan, records: list[RunRecord]) -> list[tuple[str | None, str]]:
    """(model, method) of each row, in order: per model its encoder methods, then the methods without an encoder."""
    planned = {(record.model, record.method) for record in records}
    keys = [
        (entry.label, method)
        for entry in plan.models
        for method in plan.methods
        if uses_encoder(method) and (entry.label, method) in planned
    ]
    return keys + [(None, method) for method in plan.methods if (None, method) in planned]


def build_table(plan: ComparePlan, records: list[RunRecord], results: dict[str, RunMetrics]) -> list[dict[str, Any]]:
    """One row per model and method: mean and sample standard deviation over its completed seeds, and the values
    of the comparison's metric per seed (``by_seed``, for the significance test)."""
    metric = plan.statistics.metric
    table = []
    for model, method in table_keys(plan, records):
        mine = [r for r in records if r.model == model and r.method == method]
        done = {r.seed: results[r.name] for r in mine if r.name in results}
        skipped = [r for r in mine if r.status == "skipped"]
        errors = [f"seed {r.seed}: {r.error}" for r in mine if r.status == "failed"]
        planned = len(mine) - len(skipped)
        if skipped and not planned:
            status = "skipped"
        elif len(done) == planned:
            status = "ok"
        elif not done:
            status = "failed" if errors else "pending"
        else:
            status = f"partial ({len(done)}/{planned})"
        splits = sorted({evaluated_split(m) for m in done.values()})
        row: dict[str, Any] = {
            "model": model,
            "method": method,
            "status": status,
            "reason": skipped[0].reason if skipped else None,
            "seeds_completed": len(done),
            "seeds_planned": planned,
            "split": "/".join(splits) if splits else None,
            "error": "; ".join(errors) if errors else None,
        }
        scores = {seed: m.evaluation() for seed, m in done.items()}
        for key, _ in SCORE_COLUMNS:
            row[key] = mean_sd([split.value(key) for split in scores.values()])
        row[metric] = mean_sd([split.value(metric) for split in scores.values()])
        row["by_seed"] = {
            seed: split.value(metric) for seed, split in scores.items() if _is_number(split.value(metric))
        }
        for key, _ in COST_COLUMNS:
            row[key] = mean_sd([m.value(key) for m in done.values()])
        row[INFERENCE_SPEED] = mean_sd([split.eval_samples_per_second for split in scores.values()])
        for key in ("trainable_params", "total_params", "trainable_percent"):
            values = [m.value(key) for m in done.values() if m.value(key) is not None]
            row[key] = values[0] if values else None
        table.append(row)
    return table


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def mean_sd(values: list[Any]) -> dict[str, float | None] | None:
    """Mean and sample standard deviation (n-1) of the numbers present; sd is None for a single value."""
    numbers = [float(v) for v in values if _is_number(v)]
    if not numbers:
        return None
    return {
        "mean": statistics.fmean(numbers),
        "sd": statistics.stdev(numbers) if len(numbers) > 1 else None,
        "n": len(numbers),
    }


def check_fairness(records: list[RunRecord], results: dict[str, RunMetrics]) -> dict[str, Any]:
    """Did every completed run see the same splits, and every encoder run of one model the same token ids? (Each
    model tokenizes with its own tokenizer, so token ids are compared within a model, not across models.)"""
    model_of = {record.name: record.model for record in records}
    splits = {name: m.data_fingerprint for name, m in results.items() if m.data_fingerprint}
    tokens = {name: m.token_fingerprint for name, m in results.items() if m.token_fingerprint}

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

    by_model: dict[str, dict[str, Any]] = {}
    for name, value in tokens.items():
        by_model.setdefault(str(model_of.get(name)), {})[name] = value
    per_model = {model: verdict(fingerprints) for model, fingerprints in by_model.items()}
    tokenization = {
        "identical": all(check["identical"] for check in per_model.values()) if per_model else None,
        "runs_checked": len(tokens),
        "groups": [group for check in per_model.values() for group in check["groups"]],
        "fingerprint": next(iter(per_model.values()))["fingerprint"] if len(per_model) == 1 else None,
        "models": per_model,
    }
    return {
        "splits": verdict(splits),
        "tokenization": tokenization,
        "unchecked_runs": sorted(set(results) - set(splits)),
    }


def run_row(record: RunRecord, metrics: RunMetrics | None) -> dict[str, Any]:
    row = record.to_dict()
    if metrics is not None:
        evaluation = metrics.evaluation()
        row.update(
            {
                "split": metrics.evaluated_split,
                **{key: evaluation.value(key) for key, _ in SCORE_COLUMNS},
                **{key: metrics.value(key) for key, _ in COST_COLUMNS},
                INFERENCE_SPEED: evaluation.eval_samples_per_second,
                "trainable_params": metrics.trainable_params,
                "total_params": metrics.total_params,
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


def status_cell(row: dict[str, Any]) -> str:
    if row["status"] == "skipped":
        return f"skipped: {row['reason']}"
    return row["status"] if row["status"] != "ok" else f"ok ({row['seeds_completed']})"


def table_cells(row: dict[str, Any], digits: int = 4) -> list[str]:
    """The display cells of one table row, in the order of :func:`table_headers`."""
    name = [row.get("model") or "-", row["method"], status_cell(row)]
    if row["seeds_completed"] == 0:
        return [*name, *["-"] * (len(table_headers()) - len(name))]
    cells = [*name, *(format_mean_sd(row[key], digits) for key, _ in SCORE_COLUMNS)]
    cells.append(noise_cell(row))
    cells.append(format_count(row["trainable_params"]))
    cells.append(format_count(row.get("total_params")))
    percent = row.get("trainable_percent")
    cells.append("-" if percent is None else f"{percent:.3g}%")
    cells.append(format_mean_sd(row["train_seconds"], digits=1))
    cells.append(format_mean_sd(row["train_samples_per_second"], digits=1))
    cells.append(format_mean_sd(row["peak_memory_mb"], digits=0))
    cells.append(format_mean_sd(row["peak_memory_increase_mb"], digits=0))
    cells.append(format_mean_sd(row.get(INFERENCE_SPEED), digits=1))
    return cells


def table_headers() -> list[str]:
    return [
        "Model",
        "Method",
        "Status",
        *[title for _, title in SCORE_COLUMNS],
        "vs best",
        "Trainable params",
        "Total params",
        "Trainable %",
        "Time (s)",
        "Samples/s",
        "Peak mem (MB)",
        "Mem added by run (MB)",
        "Inference samples/s",
    ]


def markdown_table(summary: dict[str, Any], table: list[dict[str, Any]], fairness: dict[str, Any]) -> str:
    headers = table_headers()
    models = ", ".join(f"{m['label']} (max length {m['max_length'] or '-'})" for m in summary["models"])
    lines = [
        f"# Comparison on {summary['dataset']}",
        "",
        f"Models: {models}. Seeds {', '.join(map(str, summary['seeds']))}; scores are mean ± sample sd over seeds on "
        f"the {splits_text(table)} split. Generated {summary['generated']}.",
        "",
    ]
    if summary.get("recommendation"):
        lines += [f"**Recommendation:** {summary['recommendation']['line']}", ""]
    lines += [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i < LABEL_COLUMNS else "---:" for i in range(len(headers))) + "|",
    ]
    for row in table:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in table_cells(row)) + " |")
    lines += ["", f"vs best: {significance_text(summary['statistics'])}."]
    failed = [row for row in table if row["error"]]
    if failed:
        lines += ["", "## Failed runs", ""]
        lines += [f"- **{row_name(row)}**: {row['error']}" for row in failed]
    if summary.get("left_out"):
        lines += ["", "## Left out of the default methods", ""]
        lines += [f"- **{item['model']} / {item['method']}**: {item['reason']}" for item in summary["left_out"]]
    lines += ["", "## Fairness", "", *(f"- {line}" for line in fairness_lines(fairness)), ""]
    return "\n".join(lines)


def fairness_lines(fairness: dict[str, Any]) -> list[str]:
    lines = []
    for key, what in (
        ("splits", "train/validation/test splits"),
        ("tokenization", "token ids (encoder runs, within each model)"),
    ):
        check = fairness[key]
        if check["identical"] is None:
            lines.append(f"{what}: no run recorded a fingerprint.")
        elif check["identical"]:
            digest = f" ({_digest(check['fingerprint'])})" if check.get("fingerprint") else ""
            lines.append(f"{what}: identical across {check['runs_checked']} runs{digest}.")
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


def splits_text(table: list[dict[str, Any]]) -> str:
    splits = sorted({row["split"] for row in table if row["split"]})
    return "/".join(splits) if splits else "evaluated"


__all__ = [
    "COST_COLUMNS",
    "INFERENCE_SPEED",
    "LABEL_COLUMNS",
    "SCORE_COLUMNS",
    "build_table",
    "check_fairness",
    "evaluated_split",
    "fairness_lines",
    "format_mean_sd",
    "markdown_table",
    "mean_sd",
    "run_row",
    "splits_text",
    "table_cells",
    "table_headers",
    "table_keys",
]
