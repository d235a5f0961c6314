"""Results files of the benchmarks that record only the machine, their arguments and what they measured
(``collate_speed.py``, ``length_grouping.py``, ``onnx_profile.py``). Imported by those scripts as a sibling."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any


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
    path = output_dir / f"{name}_{datetime.date.today().isoformat()}_{host}.json"
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
