"""Which rows of a comparison differ from the best one beyond the noise of the seeds, and the one-line
recommendation.

The test is fixed in the plan before any run (:class:`SignificanceTest`, the plan's ``statistics``): Welch's two-sided
t-test on the comparison's metric over seeds, at 5%, for rows with at least 3 completed seeds. Welch's, not a paired
test: a seed fixes the same things for every row (the split, the head's initial draw, the data order of one tokenizer)
but nothing that makes two models or methods err together, so the seeds of two rows are independent draws, and their
variances differ (a baseline's is near 0). docs/compare.md explains the choice.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field
from scipy import stats

from distiltune.schema import ConfigModel

#: How the report names the test.
TEST_NAMES = {"welch-t": "Welch's t-test (two-sided, unequal variances)"}


class SignificanceTest(ConfigModel):
    """How the report tells differences from noise, written into every plan before any run (docs/compare.md says
    why): Welch's t-test, two-sided, at 5%, on the comparison's metric over seeds, for rows with at least 3 seeds."""

    section: ClassVar[str] = "statistics"

    metric: str
    """The metric the rows are ranked and tested on: the runs' selection metric."""
    test: str = "welch-t"
    """The test of each row against the best (welch-t)."""
    alpha: float = Field(0.05, gt=0, lt=1)
    """The significance level: a row with p >= alpha is within noise of the best."""
    min_seeds: int = Field(3, ge=2)
    """Rows with fewer completed seeds are not tested."""


def higher_is_better(metric: str) -> bool:
    return metric != "loss"


def row_name(row: dict[str, Any]) -> str:
    """``model / method``, or the method alone for a method without an encoder."""
    return f"{row['model']} / {row['method']}" if row.get("model") else row["method"]


def welch_p_value(first: list[float], second: list[float]) -> float:
    """Two-sided p-value of Welch's t-test; rows without any spread are equal (1) or different (0)."""
    if statistics.pvariance(first) == 0 and statistics.pvariance(second) == 0:
        return 1.0 if statistics.fmean(first) == statistics.fmean(second) else 0.0
    with warnings.catch_warnings():
        # A row without spread (TF-IDF gives the same scores for every seed) makes scipy warn about precision; the
        # test is still defined (its variance term is 0), and the warning would only alarm.
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(first, second, equal_var=False).pvalue)


def best_row(table: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """The row with the best mean of ``metric`` over its seeds (the first one on a tie)."""
    scored = [row for row in table if row.get(metric)]
    if not scored:
        return None
    sign = 1.0 if higher_is_better(metric) else -1.0
    return max(scored, key=lambda row: sign * row[metric]["mean"])


def mark_noise(table: list[dict[str, Any]], test: SignificanceTest | Mapping[str, Any]) -> dict[str, Any] | None:
    """Set each row's ``vs_best``: ``{"best": True}`` on the best row; on the others the test's p-value against it and
    whether the difference is within noise (p >= alpha), or None where a row has too few seeds to test."""
    test = SignificanceTest.model_validate(test)
    metric, alpha, min_seeds = test.metric, test.alpha, test.min_seeds
    best = best_row(table, metric)
    for row in table:
        row["vs_best"] = None
    if best is None:
        return None
    best["vs_best"] = {"best": True}
    reference = list(best["by_seed"].values())
    for row in table:
        values = list(row["by_seed"].values())
        if row is best or len(values) < min_seeds or len(reference) < min_seeds:
            continue
        p_value = welch_p_value(reference, values)
        row["vs_best"] = {"best": False, "p_value": p_value, "within_noise": p_value >= alpha}
    return best


def recommend(table: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """The best row on ``metric``, and the fastest at inference (samples/s) among the rows within one standard
    deviation (the best row's, over seeds) of it."""
    best = best_row(table, metric)
    if best is None:
        return None
    spread = best[metric]["sd"] or 0.0
    sign = 1.0 if higher_is_better(metric) else -1.0
    close = [row for row in table if row.get(metric) and sign * (best[metric]["mean"] - row[metric]["mean"]) <= spread]
    timed = [row for row in close if speed(row) is not None]
    fastest = max(timed, key=lambda row: speed(row) or 0.0) if timed else best
    return {
        "metric": metric,
        "best": {"model": best["model"], "method": best["method"]},
        "fastest": {"model": fastest["model"], "method": fastest["method"]},
        "line": recommendation_line(best, fastest, metric),
    }


def speed(row: dict[str, Any]) -> float | None:
    cell = row.get("inference_samples_per_second")
    return cell["mean"] if cell else None


def recommendation_line(best: dict[str, Any], fastest: dict[str, Any], metric: str) -> str:
    score = _score(best[metric])
    if fastest is best:
        rate = speed(best)
        speed_text = f" ({rate:,.0f} samples/s at inference)" if rate is not None else ""
        return (
            f"{row_name(best)} has the best {metric} ({score}) and is also the fastest within one standard deviation "
            f"of it{speed_text}."
        )
    return (
        f"{row_name(best)} has the best {metric} ({score}); {row_name(fastest)} is the fastest within one standard "
        f"deviation of it ({fastest[metric]['mean']:.4f}, {speed(fastest) or 0:,.0f} against "
        f"{speed(best) or 0:,.0f} samples/s at inference)."
    )


def significance_text(test: SignificanceTest | Mapping[str, Any]) -> str:
    test = SignificanceTest.model_validate(test)
    name = TEST_NAMES.get(test.test, test.test)
    return (
        f"{name} of each row against the best on {test.metric} over seeds, at {test.alpha:g}, for rows with "
        f"at least {test.min_seeds} seeds; 'within noise': p >= {test.alpha:g}"
    )


def noise_cell(row: dict[str, Any]) -> str:
    """The "vs best" cell: best, within noise (p), below (p), or - where not tested."""
    mark = row.get("vs_best")
    if not mark:
        return "-"
    if mark["best"]:
        return "best"
    p_value = mark["p_value"]
    shown = "nan" if not math.isfinite(p_value) else "< 0.001" if p_value < 0.001 else f"{p_value:.2g}"
    return f"within noise (p {shown})" if mark["within_noise"] else f"differs (p {shown})"


def _score(cell: dict[str, Any]) -> str:
    return f"{cell['mean']:.4f}" + (f" ± {cell['sd']:.4f}" if cell.get("sd") is not None else "")


__all__ = [
    "TEST_NAMES",
    "SignificanceTest",
    "best_row",
    "higher_is_better",
    "mark_noise",
    "noise_cell",
    "recommend",
    "recommendation_line",
    "row_name",
    "significance_text",
    "welch_p_value",
]
