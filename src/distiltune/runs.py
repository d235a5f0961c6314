"""Run directories: naming, creation that never overwrites, and the files each run holds.

```
runs/<YYYY-MM-DD_HH-MM-SS>_<model>_<dataset>_<method>/
  config.yaml        resolved config (re-running it repeats the run)
  env.json           versions, device and precision actually used
  model/             best model: safetensors weights, tokenizer, label maps
  checkpoints/       best and last Trainer checkpoints, written atomically (for --resume)
  status.json        running / completed / failed / interrupted, with the error and the resume command
  history.jsonl      one row per evaluation
  metrics.json       final validation/test metrics, timing, parameters
  predictions.jsonl  per-example gold/predicted/probabilities on the evaluated split
  plots/*.png        loss, accuracy/F1 curves, confusion matrix
  train.log          the log of the run
```
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from distiltune.errors import RunError

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.jsonl"
PREDICTIONS_FILE = "predictions.jsonl"
MODEL_DIR = "model"
CHECKPOINTS_DIR = "checkpoints"
PLOTS_DIR = "plots"
LOG_FILE = "train.log"
ENV_FILE = "env.json"


def slug(text: str, limit: int = 40) -> str:
    """A filesystem-safe short name: the last path component, lower-cased, non-alphanumerics as '-'."""
    text = text.rstrip("/\\").replace(":", "-")
    text = re.split(r"[/\\]", text)[-1]
    text = re.sub(r"\.(csv|tsv|jsonl|json|parquet)$", "", text, flags=re.IGNORECASE)
    return (re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower() or "run")[:limit]


def create_run_dir(output_dir: str | Path, model: str, dataset: str, method: str, name: str | None = None) -> Path:
    """Make a new run directory. An explicit ``name`` that exists is an error; a generated one gets a suffix."""
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    if name:
        path = root / name
        try:
            path.mkdir()
        except FileExistsError:
            raise RunError(
                f"Run directory {path} already exists; it is never overwritten.",
                "Choose another run.name, or resume it with --resume.",
            ) from None
        return path
    return create_unique_dir(root, f"{slug(model)}_{slug(dataset)}_{method}")


def create_unique_dir(root: Path, suffix: str) -> Path:
    """Create ``root/<timestamp>_<suffix>``, adding -2, -3, ... when two runs start in the same second."""
    root.mkdir(parents=True, exist_ok=True)
    base = f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{suffix}"
    for attempt in range(1000):
        path = root / (base if attempt == 0 else f"{base}-{attempt + 1}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunError(f"Could not create a new directory under {root}.")


def write_json(path: Path, data: Any) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=_jsonable) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, default=_jsonable) + "\n")
    os.replace(tmp, path)


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False, default=_jsonable) + "\n")
        handle.flush()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    # Split on "\n" only: str.splitlines() also breaks at U+2028, U+0085 and friends, which json.dumps with
    # ensure_ascii=False leaves raw inside strings (IMDb reviews contain U+0085).
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
