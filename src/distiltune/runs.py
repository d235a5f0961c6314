"""The run-directory contract: every file name, creation that never overwrites, status.json, completeness
checks, JSON/JSONL I/O and the one helper that copies the log into a run's (or comparison's) log file.

```
runs/<YYYY-MM-DD_HH-MM-SS>_<model>_<dataset>_<method>/
  config.yaml        resolved config (re-running it repeats the run)
  env.json           versions, device and precision actually used
  model/             best model: safetensors weights, tokenizer, labels.json (label map, max length, method),
                     calibration.json (fitted temperature / decision threshold; only when the run fitted one)
  checkpoints/       best and last Trainer checkpoints, written atomically (for --resume)
  status.json        running / completed / failed / interrupted, with the error and the resume command
  history.jsonl      one row per evaluation
  metrics.json       final validation/test metrics, timing, parameters
  predictions.jsonl  per-example gold/predicted/probabilities on the evaluated split
  plots/*.png        loss, accuracy/F1 curves, confusion matrix
  train.log          the log of the run
  tensorboard/       TensorBoard event files (only with train.report_to=tensorboard)
  export/<variant>/  ONNX exports (distiltune export)
  eval_<name>.json   evaluations on other data (distiltune evaluate)
```

``status.json`` says what state a run directory is in, so that people and tools never have to guess::

    {"status": "running" | "completed" | "failed" | "interrupted" | "pruned",
     "pid": 1234, "host": "...", "started_at": "...", "updated_at": "...",
     "step": 120,                      # last optimizer step reached (interrupted/failed runs)
     "checkpoint": "checkpoints/checkpoint-120",   # newest complete checkpoint, when there is one
     "error": "...",                   # failed runs: the one-line error
     "resume": "distiltune train --resume runs/..."}   # how to continue (failed/interrupted runs)

``pruned``: a trial of ``distiltune tune`` that the study's pruner stopped after an evaluation; the record adds
``trial``, ``study``, ``evaluation``, ``epoch``, ``step``, ``metric`` and ``value`` (where it was stopped).

It is written atomically (temp file + rename). A run killed with SIGKILL keeps ``running``; resume tells such a
run from a live one by its pid.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import socket
import time
from pathlib import Path
from typing import Any, Literal

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
TENSORBOARD_DIR = "tensorboard"
STATUS_FILE = "status.json"
EXPORT_DIR = "export"
#: Inside ``model/``: the label map, max length, input kind and method of the saved model.
LABELS_FILE = "labels.json"
#: Inside ``model/`` (and copied into an ONNX export): the temperature and decision threshold fitted after training
#: (``train.calibrate``, ``train.tune_threshold``). No file: probabilities as the model gives them, argmax labels.
CALIBRATION_FILE = "calibration.json"

RunStatus = Literal["running", "completed", "failed", "interrupted", "pruned"]
#: Status words that mean finished (older tools wrote some of the synonyms).
COMPLETED_STATUSES = ("completed", "complete", "done", "finished")


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


# --- model/labels.json ----------------------------------------------------------------------------


def write_model_info(
    model_dir: Path,
    id2label: dict[int, str],
    max_length: int | None,
    is_pair: bool,
    method: str,
    task: str | None = None,
) -> None:
    """``model/labels.json``: what a saved model needs besides its weights to predict. ``task`` names the kind of
    task for every kind but single-label (absent there, as in every run written before other kinds existed)."""
    info: dict[str, Any] = {"id2label": id2label, "max_length": max_length, "is_pair": is_pair, "method": method}
    if task is not None:
        info["task"] = task
    write_json(model_dir / LABELS_FILE, info)


def read_model_info(model_dir: Path) -> dict[str, Any]:
    return read_json(model_dir / LABELS_FILE)


def label_names(model_info: dict[str, Any]) -> list[str]:
    """The label names of ``labels.json`` in id order."""
    id2label = model_info["id2label"]
    return [id2label[str(i)] for i in range(len(id2label))]


def saved_method(run_dir: Path) -> str | None:
    """The method a finished run saved its model with (``model/labels.json``), or None before it has one."""
    path = Path(run_dir) / MODEL_DIR / LABELS_FILE
    if not path.is_file():
        return None
    method = read_json(path).get("method")
    return str(method) if method else "full"


# --- status.json ----------------------------------------------------------------------------------


def resume_command(run_dir: Path, processes: int = 1, nodes: int = 1) -> str:
    """How to continue ``run_dir``; a run trained by several processes resumes with as many (``--nproc``), and one
    trained on several machines with the same torchrun launch on each of them (``--nproc`` starts one machine's)."""
    if nodes > 1:
        return (
            f"torchrun --nnodes {nodes} --nproc_per_node {processes // nodes} <the run's rendezvous flags> "
            f"-m distiltune train --resume {shlex.quote(str(run_dir))}"
        )
    launch = f"distiltune train --nproc {processes} --resume" if processes > 1 else "distiltune train --resume"
    return f"{launch} {shlex.quote(str(run_dir))}"


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
    """Record ``status`` (keeping started_at from the previous record) and return what was written. A failed or
    interrupted run records how to resume it, unless ``resume=None`` says resuming cannot help."""
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


def is_completed(run_dir: Path) -> bool:
    """A run counts as done when it finished writing its metrics and model (and its status.json, if any, agrees)."""
    run_dir = Path(run_dir)
    if (run_dir / STATUS_FILE).is_file():
        record = read_status(run_dir)
        if record is None or record.get("status") not in COMPLETED_STATUSES:
            return False
    return (run_dir / METRICS_FILE).is_file() and (run_dir / MODEL_DIR).is_dir()


# --- logs -------------------------------------------------------------------------------------------


class log_to:  # noqa: N801 - used as a context manager, named like one
    """Copy the distiltune log (and any ``extra`` loggers, e.g. transformers) into ``path`` while the block runs.

    The distiltune logger is raised to INFO for the duration if it was quieter, so the file is complete; the
    console keeps its own level. With ``log_failure``, a failure that ends the block is logged into the file before it
    closes; ``source`` prefixes every line (e.g. ``host:pid`` when several processes share the file).
    """

    def __init__(
        self, path: Path, extra: tuple[str, ...] = (), log_failure: bool = False, source: str | None = None
    ) -> None:
        self.handler = logging.FileHandler(path, encoding="utf-8")
        names = "%(name)s: " if extra else ""
        # Several processes may append to one file (tune workers): ``source`` says which wrote a line.
        origin = f"{source} " if source else ""
        self.handler.setFormatter(logging.Formatter(f"%(asctime)s {origin}%(levelname)s {names}%(message)s"))
        self.handler.setLevel(logging.INFO)
        self.loggers = [logging.getLogger("distiltune"), *(logging.getLogger(name) for name in extra)]
        self.log_failure = log_failure
        self.previous_level = logging.NOTSET

    def __enter__(self) -> None:
        for log in self.loggers:
            log.addHandler(self.handler)
        distiltune_log = self.loggers[0]
        self.previous_level = distiltune_log.level
        if distiltune_log.level == logging.NOTSET or distiltune_log.level > logging.INFO:
            distiltune_log.setLevel(logging.INFO)

    def __exit__(self, *exc: object) -> None:
        if self.log_failure and exc[0] is not None and not isinstance(exc[1], KeyboardInterrupt):
            self.loggers[0].error("Run failed: %s", exc[1])
        for log in self.loggers:
            log.removeHandler(self.handler)
        self.loggers[0].setLevel(self.previous_level)
        self.handler.close()


class held_log:  # noqa: N801 - used as a context manager, named like one
    """Keep the distiltune log records of a block (INFO and above) for a run's log file that does not exist yet:
    what ``train`` does before it creates the run directory (loading the data) still belongs in its train.log.
    The console shows the records as they come; :meth:`write_to` copies them into a :class:`log_to`'s file."""

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []
        self.handler = _RecordList(self.records)
        self.logger = logging.getLogger("distiltune")
        self.previous_level = logging.NOTSET

    def __enter__(self) -> held_log:
        self.logger.addHandler(self.handler)
        self.previous_level = self.logger.level
        if self.logger.level == logging.NOTSET or self.logger.level > logging.INFO:
            self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.previous_level)

    def write_to(self, log: Any) -> None:
        """Write the held records into ``log``'s file (nothing for anything but a :class:`log_to`)."""
        if isinstance(log, log_to):
            for record in self.records:
                log.handler.handle(record)


class _RecordList(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.INFO)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
