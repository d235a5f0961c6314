"""The comparison table: one row per method with mean ± sd over its seeds, the fairness check, and the table as
cells, Markdown and fairness lines."""

from __future__ import annotations

import statistics
from typing import Any

from distiltune.comparison.plan import RunRecord

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


def run_row(record: RunRecord, metrics: dict[str, Any] | None) -> dict[str, Any]:
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
        f"{splits_text(table)} split. Generated {summary['generated']}.",
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


def splits_text(table: list[dict[str, Any]]) -> str:
    splits = sorted({row["split"] for row in table if row["split"]})
    return "/".join(splits) if splits else "evaluated"


__all__ = [
    "COST_COLUMNS",
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
]
