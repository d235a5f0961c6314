"""Run a comparison's plan: every model x method x seed, each an ordinary run directory; a run or a model that fails
is recorded and the others go on; ``--resume`` skips what completed, continues what was interrupted and retries the
rest."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from distiltune import runs, training
from distiltune.comparison.plan import (
    LOG_FILE,
    ComparePlan,
    RunRecord,
    extend_plan,
    left_out,
    new_plan,
    plan_records,
    run_config,
    write_plan,
    write_records,
)
from distiltune.comparison.report import Comparison, render_report
from distiltune.config import Config
from distiltune.errors import DistiltuneError, RunError
from distiltune.training.checkpoints import newest_complete_checkpoint

logger = logging.getLogger("distiltune")


def compare(
    config: Config | str | Path | Mapping[str, Any] | None = None,
    overrides: list[str] | Mapping[str, Any] | None = None,
    methods: Sequence[str] | str | None = None,
    seeds: int | Sequence[int] | str | None = None,
    output_dir: str | Path | None = None,
    resume: str | Path | None = None,
    models: Sequence[str | Mapping[str, Any]] | str | None = None,
    models_config: str | Path | None = None,
) -> Comparison:
    """Train and evaluate ``models`` x ``methods`` x ``seeds`` on identical splits; write the comparison report.

    ``config`` and ``overrides`` are read as :func:`~distiltune.config.load_config` reads them (a Config, a YAML
    file that may also hold a ``models:`` list, a mapping, or None for the defaults, plus dotted overrides);
    ``method.*`` overrides apply to every compared method that has the option.

    ``models`` is ``"a,b"`` or a list of names and entries (``{"name": "roberta-base", "train.lr": 2e-5}``);
    unset: the config's ``models:`` list, else ``models_config``'s (a YAML list of entries), else ``model.name``.
    A named model takes its settings from a matching entry of those lists.
    ``seeds`` is a count (``3``: train.seed, +1, +2) or explicit seeds (``[1, 7]`` or ``"1,7"``).
    ``resume`` points at an earlier comparison directory: its plan is reused and completed runs are skipped;
    ``models``/``methods``/``seeds`` may extend it, config changes may not.
    """
    if resume is not None:
        compare_dir = Path(resume)
        plan = extend_plan(compare_dir, config, overrides, methods, seeds, models, models_config)
    else:
        plan = new_plan(config, overrides, methods, seeds, models, models_config)
        root = Path(output_dir) if output_dir is not None else Path("compare")
        compare_dir = runs.create_unique_dir(root, runs.slug(plan.config.data.dataset))
    write_plan(compare_dir, plan)
    records = plan_records(plan)
    with runs.log_to(compare_dir / LOG_FILE):
        logger.info(
            "Comparing %s x %s over seeds %s in %s",
            ", ".join(entry.label for entry in plan.models),
            ", ".join(plan.methods),
            plan.seeds,
            compare_dir,
        )
        for entry in plan.models:
            if entry.error:
                logger.error("Model %s could not be loaded; its runs fail: %s", entry.label, entry.error)
        for model, method, reason in left_out(plan):
            logger.info("Left %s out for %s (default methods): %s.", method, model, reason)
        summarized: set[str] = set()
        for index, record in enumerate(records, start=1):
            execute_run(compare_dir, plan, record, f"[{index}/{len(records)}]", summarized)
            write_records(compare_dir, records)
    return render_report(compare_dir)


def execute_run(
    compare_dir: Path, plan: ComparePlan, record: RunRecord, progress: str, summarized: set[str] | None = None
) -> None:
    """Run (or skip, or resume) one record of the plan and note how it ended.

    ``summarized`` holds the models whose dataset summary (token lengths under their tokenizer) was already logged
    by an earlier run of this invocation: the summary is logged once per tokenizer, not once per run.
    """
    run_dir = compare_dir / record.name
    if record.status == "skipped":
        logger.info("%s %s: skipped, %s.", progress, record.name, record.reason)
        return
    if runs.is_completed(run_dir):
        record.status, record.error, record.reused = "completed", None, True
        logger.info("%s %s: already completed, skipped.", progress, record.name)
        return
    entry = plan.model(record.model) if record.model is not None else None
    if entry is not None and entry.error:
        record.status, record.error = "failed", f"model {entry.label} could not be loaded: {entry.error}"[:500]
        logger.error("%s %s failed: %s", progress, record.name, record.error)
        return
    resumable = _resumable(run_dir)
    if run_dir.exists() and not resumable:
        aside = _free_name(compare_dir, f"{record.name}.incomplete")
        run_dir.rename(aside)
        logger.info("%s %s: an unfinished attempt was moved to %s.", progress, record.name, aside.name)
    logger.info("%s %s: %s.", progress, record.name, "resuming from its checkpoint" if resumable else "training")
    summarized = set() if summarized is None else summarized
    summary = record.model is None or record.model not in summarized
    started = time.perf_counter()
    try:
        if resumable:  # an interrupted or crashed run continues where it stopped (training.resume)
            training.train(resume=run_dir, data_summary=summary)
        else:
            training.train(run_config(plan, compare_dir, record), data_summary=summary)
    except Exception as err:  # one run failing must not stop the others
        message = err.one_line() if isinstance(err, DistiltuneError) else f"{type(err).__name__}: {err}"
        record.status, record.error = "failed", " ".join(message.split())[:500]
        logger.error("%s %s failed: %s", progress, record.name, record.error)
        _append_traceback(compare_dir / LOG_FILE, record.name)
        return
    if record.model is not None:
        summarized.add(record.model)
    record.status, record.error, record.reused = "completed", None, False
    logger.info("%s %s: done in %.1f s.", progress, record.name, time.perf_counter() - started)


def _resumable(run_dir: Path) -> bool:
    """An unfinished run with its config and a complete checkpoint: resuming it beats starting over."""
    return (run_dir / runs.CONFIG_FILE).is_file() and newest_complete_checkpoint(
        run_dir / runs.CHECKPOINTS_DIR
    ) is not None


def _append_traceback(path: Path, name: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"--- traceback of {name} ---\n{traceback.format_exc()}\n")


def _free_name(parent: Path, base: str) -> Path:
    for attempt in range(1, 1000):
        candidate = parent / (base if attempt == 1 else f"{base}-{attempt}")
        if not candidate.exists():
            return candidate
    raise RunError(f"Too many unfinished attempts of {base} in {parent}.", "Remove the *.incomplete folders.")


__all__ = ["compare", "execute_run"]
