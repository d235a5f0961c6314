"""``status.json``: what state a run directory is in, so that people and tools never have to guess.

```
{"status": "running" | "completed" | "failed" | "interrupted",
 "pid": 1234, "host": "...", "started_at": "...", "updated_at": "...",
 "step": 120,                      # last optimizer step reached (interrupted/failed runs)
 "checkpoint": "checkpoints/checkpoint-120",   # newest complete checkpoint, when there is one
 "error": "...",                   # failed runs: the one-line error
 "resume": "distiltune train --resume runs/..."}   # how to continue (failed/interrupted runs)
```

The file is written atomically (temp file + rename). A run killed with SIGKILL keeps ``running``; resume
tells such a run from a live one by its pid.
"""

from __future__ import annotations

import os
import shlex
import socket
import time
from pathlib import Path
from typing import Any, Literal

from distiltune.runs import read_json, write_json

STATUS_FILE = "status.json"
RunStatus = Literal["running", "completed", "failed", "interrupted"]


def resume_command(run_dir: Path) -> str:
    return f"distiltune train --resume {shlex.quote(str(run_dir))}"


def read_status(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / STATUS_FILE
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except ValueError:  # unreadable: treat like a run that never wrote one
        return None
    return data if isinstance(data, dict) else None


def write_status(run_dir: Path, status: RunStatus, **fields: Any) -> dict[str, Any]:
    """Record ``status`` (keeping started_at from the previous record) and return what was written."""
    run_dir = Path(run_dir)
    previous = read_status(run_dir) or {}
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record: dict[str, Any] = {
        "status": status,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": previous.get("started_at", now),
        "updated_at": now,
    }
    if "resumed_from" in previous:  # a resumed run stays marked as such until it finishes
        record["resumed_from"] = previous["resumed_from"]
    if status in ("failed", "interrupted"):
        fields.setdefault("resume", resume_command(run_dir))
    record.update({key: value for key, value in fields.items() if value is not None})
    write_json(run_dir / STATUS_FILE, record)
    return record


def is_alive_elsewhere(record: dict[str, Any]) -> bool:
    """True when a ``running`` record belongs to a process that still exists on this host (not us)."""
    if record.get("status") != "running" or record.get("host") != socket.gethostname():
        return False
    pid = record.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


__all__ = ["STATUS_FILE", "is_alive_elsewhere", "read_status", "resume_command", "write_status"]
