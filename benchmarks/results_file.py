"""Results files of the benchmarks, imported by the scripts as a sibling module.

``save_results`` writes the files of the benchmarks that record only the machine, their arguments and what they
measured (``collate_speed.py``, ``length_grouping.py``, ``onnx_profile.py``). ``load_result_file`` and
``refuse_unpoolable`` serve the benchmarks that add seeds to an earlier file (``--append``): one file may pool runs
only when they measured the same thing."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def save_results(name: str, output_dir: Path, args: argparse.Namespace, measured: Any) -> Path:
    """Write ``benchmarks/results/<name>_<date>_<host>.json`` (the machine, the arguments, what was measured), so
    the figures can be quoted with their file."""
    import datetime
    import json
    import platform
    import socket

    import torch

    host = socket.gethostname()
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        names = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        cpu = names[0].partition(":")[2].strip() if names else cpu
    path = dated_result_path(name, output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "hardware": {
            "host": host,
            "cpu": cpu,
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "args": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
        "results": measured,
    }
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"Wrote {path}")
    return path


def dated_result_path(name: str, output_dir: Path = RESULTS_DIR) -> Path:
    """``<output_dir>/<name>_<date>_<host>.json``: where a benchmark writes unless told otherwise."""
    import datetime
    import socket

    return output_dir / f"{name}_{datetime.date.today().isoformat()}_{socket.gethostname()}.json"


def load_result_file(path: Path, kind: str) -> dict[str, Any]:
    """The result file at ``path``, checked to hold the ``args`` and ``runs`` every appendable benchmark writes.
    ``kind`` names the benchmark in the one-line error."""
    import json

    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SystemExit(f"Cannot read the result file {path}: {err}") from err
    if not isinstance(result, dict) or "runs" not in result or "args" not in result:
        raise SystemExit(f"{path} is not a {kind} result file (no 'args'/'runs').")
    return result


def refuse_unpoolable(
    settings: Mapping[str, Any],
    recorded: Mapping[str, Any],
    source: Path,
    keys: Sequence[str],
    missing: Mapping[str, Any] | None = None,
) -> None:
    """Exit with one line when ``recorded`` (the settings of ``source``) differs from ``settings`` in any of ``keys``.
    ``missing`` gives the value a key had before a benchmark recorded it, so older files still pool."""
    defaults = missing or {}

    def value(of: Mapping[str, Any], key: str) -> Any:
        found = of.get(key)
        return defaults[key] if key in defaults and not found else found

    different = [key for key in keys if value(settings, key) != value(recorded, key)]
    if different:
        details = ", ".join(
            f"{key}: {value(settings, key)!r} here, {value(recorded, key)!r} there" for key in different
        )
        raise SystemExit(f"{source} was measured with other settings ({details}); its runs cannot be pooled.")
