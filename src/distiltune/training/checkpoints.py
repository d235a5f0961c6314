"""Finding, completing and cleaning up checkpoints on disk (the Trainer that writes them is :mod:`.trainer`).

A checkpoint is written into ``checkpoints/.checkpoint-N.partial`` and renamed to ``checkpoint-N`` only when every
file is on disk; :data:`LOOP_STATE_FILE`, written last, marks it complete. Resume takes the newest complete one.
(Under FSDP and DeepSpeed the Trainer's engines write ``checkpoint-N`` in place; the marker still comes last.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

TRAINER_STATE_FILE = "trainer_state.json"
LOOP_STATE_FILE = "distiltune_state.json"
"""Written last into every checkpoint: its presence (with trainer_state.json) marks a complete checkpoint."""
_CHECKPOINT_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def checkpoint_step(path: Path) -> int | None:
    match = _CHECKPOINT_NAME.match(path.name)
    return int(match.group(1)) if match else None


#: Where a checkpoint's weights are: safetensors (single process, DDP, FSDP with a full state dict), FSDP's sharded
#: state (``pytorch_model_fsdp_0/``, ``pytorch_model_fsdp*.bin``), DeepSpeed's engine state (``global_stepN/``).
_WEIGHTS = ("*.safetensors", "pytorch_model_fsdp*", "global_step*")


def is_complete_checkpoint(path: Path) -> bool:
    return (
        checkpoint_step(path) is not None
        and path.is_dir()
        and (path / TRAINER_STATE_FILE).is_file()
        and (path / LOOP_STATE_FILE).is_file()
        and any(any(path.glob(pattern)) for pattern in _WEIGHTS)
    )


def newest_complete_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The complete ``checkpoint-N`` with the highest N; partial (dot-prefixed) folders never count."""
    if not checkpoints_dir.is_dir():
        return None
    complete = [path for path in checkpoints_dir.iterdir() if is_complete_checkpoint(path)]
    return max(complete, key=lambda path: checkpoint_step(path) or 0, default=None)


def checkpoint_world_size(path: Path) -> int:
    """How many processes wrote a complete checkpoint (1 for checkpoints from before distiltune recorded it)."""
    try:
        state = json.loads((path / LOOP_STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 1
    return int(state.get("world_size", 1)) if isinstance(state, dict) else 1


def remove_partial_checkpoints(checkpoints_dir: Path) -> list[str]:
    """Delete leftovers of interrupted checkpoint writes; return their names."""
    if not checkpoints_dir.is_dir():
        return []
    removed = []
    for path in checkpoints_dir.iterdir():
        if path.name.startswith(".") and path.name.endswith((".partial", ".old")):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def replace_dir(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``; an existing ``target`` is moved aside first, then deleted."""
    if target.exists():
        aside = target.with_name(f".{target.name}.old")
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(target, aside)
        os.replace(source, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(source, target)
    _fsync_dir(target.parent)


def _fsync_enabled() -> bool:
    """fsync makes a renamed checkpoint survive a power cut too, not only a crash of the process; it costs
    about a second per GB. ``DISTILTUNE_FSYNC=0`` turns it off (the test suite does, on shared CI disks)."""
    return os.environ.get("DISTILTUNE_FSYNC", "1").strip().lower() not in ("0", "false", "no")


def fsync_tree(directory: Path) -> None:
    if not _fsync_enabled():
        return
    for path in directory.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    if not _fsync_enabled():
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = [
    "LOOP_STATE_FILE",
    "TRAINER_STATE_FILE",
    "checkpoint_step",
    "checkpoint_world_size",
    "fsync_tree",
    "is_complete_checkpoint",
    "newest_complete_checkpoint",
    "remove_partial_checkpoints",
    "replace_dir",
]
