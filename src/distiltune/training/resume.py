"""Resuming runs, and the status bookkeeping around every run.

``distiltune train --resume RUN_DIR`` reloads the run's resolved ``config.yaml`` and continues from the
newest complete checkpoint under ``RUN_DIR/checkpoints`` (model, optimizer, scheduler, RNG states, data
position and logged-loss bookkeeping), so the finished run equals one that was never interrupted. A run
that died before its first checkpoint starts over in the same directory. A checkpoint written by N processes
(torchrun / accelerate launch) resumes only with N processes: each process's RNG state and its share of the
batches depend on N.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from distiltune import runs
from distiltune.config import Config, read_yaml_file
from distiltune.errors import ConfigError, DataError, DistiltuneError, ModelError, RunError
from distiltune.runs import is_alive_elsewhere, read_status, resume_command, write_status
from distiltune.training import distributed
from distiltune.training.checkpoints import (
    checkpoint_world_size,
    newest_complete_checkpoint,
    remove_partial_checkpoints,
)
from distiltune.training.interrupts import InterruptHandler, RunInterrupted

#: Keys added after runs were already being written, with the value that reproduces what a run written before them
#: did. A resumed run must keep its data order, so an old config.yaml without the key gets this, not today's default.
_VALUES_BEFORE_THE_KEY_EXISTED: dict[tuple[str, str], object] = {
    ("train", "length_group_batches"): None,  # transformers' mega-batch rule
}

logger = logging.getLogger("distiltune")

#: Failures that ``--resume`` would meet again: the resumed run re-reads the same config and data, and loads the same
#: model. A failed run's status.json names the resume command only for the others (a crash, a full disk).
RESUMING_CANNOT_FIX = (ConfigError, DataError, ModelError)

#: Files a finished run writes after training; a resumed run rewrites them, so leftovers go first.
_FINAL_OUTPUTS = (runs.METRICS_FILE, runs.PREDICTIONS_FILE)


@dataclass(frozen=True)
class ResumePlan:
    run_dir: Path
    config: Config
    checkpoint: Path | None
    """Newest complete checkpoint, or None to start over (the run died before its first checkpoint)."""


def run_config(run_dir: str | Path) -> Config:
    """The config a run was started with (``config.yaml``), as it was written; reads nothing else."""
    run_dir = Path(run_dir)
    if not (run_dir / runs.CONFIG_FILE).is_file():
        raise RunError(
            f"Cannot resume {run_dir}: no {runs.CONFIG_FILE} there.",
            "Pass a run directory created by distiltune train (it writes config.yaml before training starts).",
        )
    return _config_as_written(run_dir / runs.CONFIG_FILE)


def prepare_resume(run_dir: str | Path, world_size: int = 1) -> ResumePlan:
    """Check that ``run_dir`` can be resumed by ``world_size`` processes, clean up what a crash left behind, and
    pick the checkpoint."""
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    status = read_status(run_dir) or {}
    if status.get("status") == "completed":
        raise RunError(
            f"{run_dir} already completed; there is nothing to resume.",
            f"Start a new run with: distiltune train --config {run_dir / runs.CONFIG_FILE}",
        )
    if is_alive_elsewhere(status):
        raise RunError(
            f"{run_dir} is still being trained by process {status.get('pid')}.",
            "Stop that process first (Ctrl-C saves a checkpoint), then resume.",
        )
    checkpoints_dir = run_dir / runs.CHECKPOINTS_DIR
    checkpoint = newest_complete_checkpoint(checkpoints_dir)
    if checkpoint is not None:
        check_world_size(run_dir, checkpoint_world_size(checkpoint), world_size)
    removed = remove_partial_checkpoints(checkpoints_dir)
    if removed:
        logger.info("Removed incomplete checkpoint folders: %s", ", ".join(removed))
    # Outputs of the final phase are rebuilt from the best checkpoint; a crash may have left them half-done.
    shutil.rmtree(run_dir / runs.MODEL_DIR, ignore_errors=True)
    for name in _FINAL_OUTPUTS:
        (run_dir / name).unlink(missing_ok=True)
    if checkpoint is None:
        shutil.rmtree(checkpoints_dir, ignore_errors=True)
        (run_dir / runs.HISTORY_FILE).unlink(missing_ok=True)
    return ResumePlan(run_dir=run_dir, config=config, checkpoint=checkpoint)


def check_world_size(run_dir: Path, recorded: int, current: int) -> None:
    """Refuse, in one line naming the launch to use, a resume by another number of processes than ``recorded``."""
    if recorded == current:
        return
    raise RunError(
        f"{run_dir} was trained by {recorded} process{'es' if recorded > 1 else ''} and this launch has {current}; "
        "a checkpoint resumes only with the same number (the data order and each process's RNG state depend on it).",
        f"Resume with: {resume_command(run_dir, recorded, _recorded_nodes(run_dir))}",
    )


def _recorded_nodes(run_dir: Path) -> int:
    """The machines the run trained on, from its env.json (1 when it has no record)."""
    try:
        return int(runs.read_json(run_dir / runs.ENV_FILE).get("distributed", {}).get("nodes") or 1)
    except (OSError, ValueError, AttributeError):
        return 1


def _config_as_written(path: Path) -> Config:
    saved = read_yaml_file(path)
    if isinstance(saved, dict):
        for (section, key), value in _VALUES_BEFORE_THE_KEY_EXISTED.items():
            values = saved.get(section) or {}
            if isinstance(values, dict) and key not in values:
                saved[section] = {**values, key: value}
    return Config.from_dict(saved, source=str(path))


@contextmanager
def supervised(run_dir: Path, plan: ResumePlan | None = None, record: bool = True) -> Iterator[InterruptHandler]:
    """Keep ``status.json`` true while a run lasts and turn SIGINT/SIGTERM into a checkpoint-and-stop.

    ``record=False`` (the other processes of a multi-process run) handles the signals but leaves status.json and
    the log to the main process."""
    if not record:
        with InterruptHandler(announce=False) as handler:
            yield handler
        return
    resume = resume_command(run_dir, distributed.world_size(), distributed.nodes())
    fields = {}
    if plan is not None:
        fields["resumed_from"] = str(plan.checkpoint.relative_to(run_dir)) if plan.checkpoint else "start"
    write_status(run_dir, "running", **fields)
    try:
        with InterruptHandler() as handler:
            yield handler
    except KeyboardInterrupt as err:
        checkpoint = newest_complete_checkpoint(run_dir / runs.CHECKPOINTS_DIR)
        where = (
            f"Checkpoint {checkpoint.relative_to(run_dir)} is saved."
            if checkpoint
            else "No checkpoint was saved yet, so a resumed run starts over."
        )
        cause = str(err) or "KeyboardInterrupt"
        write_status(
            run_dir,
            "interrupted",
            error=f"interrupted ({cause})",
            step=getattr(err, "step", None),
            checkpoint=str(checkpoint.relative_to(run_dir)) if checkpoint else None,
            resume=resume,
        )
        message = f"Run interrupted ({cause}). {where} Resume with: {resume}"
        logger.warning("%s", message)
        raise RunInterrupted(message, step=getattr(err, "step", None)) from None
    except DistiltuneError as err:
        # Resuming re-reads the run's saved config and data: it helps after a crash, not after a mistake in those.
        hint = None if isinstance(err, RESUMING_CANNOT_FIX) else resume
        write_status(run_dir, "failed", error=err.one_line(), resume=hint, **_checkpoint_field(run_dir))
        raise
    except Exception as err:
        write_status(
            run_dir, "failed", error=f"{type(err).__name__}: {err}", resume=resume, **_checkpoint_field(run_dir)
        )
        raise
    except SystemExit as err:  # sys.exit() from user code (a callback, a custom head): the run did not finish
        write_status(
            run_dir, "failed", error=f"exited with status {err.code}", resume=resume, **_checkpoint_field(run_dir)
        )
        raise
    else:
        write_status(run_dir, "completed", resume=None)


def _checkpoint_field(run_dir: Path) -> dict[str, str]:
    checkpoint = newest_complete_checkpoint(run_dir / runs.CHECKPOINTS_DIR)
    return {"checkpoint": str(checkpoint.relative_to(run_dir))} if checkpoint else {}


__all__ = ["RESUMING_CANNOT_FIX", "ResumePlan", "check_world_size", "prepare_resume", "run_config", "supervised"]
