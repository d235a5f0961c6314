"""How long does the quickstart demo take, and what does it score? Times ``distiltune demo`` itself.

Each repeat calls ``distiltune.training.demo.run_demo``, the function ``distiltune demo`` runs (the packaged
MiniLM fine-tuned on the bundled 1,500 IMDb reviews, tested on 500, then reloaded to classify four sentences), and
records its wall time, the training seconds, the test accuracy and the precision the run chose. The machine is
recorded with it: CPU model, the flags that decide bf16 (AVX512-BF16, AMX) and AVX-512, torch's thread count and
the bf16/fp32 matmul ratio the run measured. The time to import torch and distiltune (paid once per ``distiltune
demo`` command, not per repeat) is recorded on its own.

    .venv/bin/python benchmarks/demo.py                       # one demo run, precision as the demo picks it
    .venv/bin/python benchmarks/demo.py --repeats 3
    .venv/bin/python benchmarks/demo.py --precision fp32      # the fp32 path on a machine where auto picks bf16

Run it on a quiet machine: the figures are wall-clock times. Results go to
``benchmarks/results/demo_<date>_<host>.json`` (``..._fp32.json`` with ``--precision fp32``), written after every
repeat. ``--smoke`` shrinks the data (32 training and 32 test reviews, max length 64, one epoch) to check the
script in seconds; its file goes to the work directory unless ``--output-dir`` is given, and says ``smoke: true``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

#: What --smoke puts on top of the demo's settings: the same code path on a sliver of the data.
SMOKE_OVERRIDES: dict[str, Any] = {
    "data.max_train_samples": 32,
    "data.max_eval_samples": 32,
    "data.max_length": 64,
    "train.epochs": 1,
}

#: CPU flags worth recording: they decide whether bf16 is native (and so whether ``precision: auto`` may pick it).
RECORDED_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1, help="Demo runs, one after the other (default 1).")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="auto: what the demo picks (it sets nothing); fp32/bf16: forced with train.precision.",
    )
    parser.add_argument("--smoke", action="store_true", help="Tiny data and one epoch: checks the script only.")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Extra config override on top of the demo's (recorded in the results file; not the demo any more).",
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="Where the runs go (default: a temp dir).")
    parser.add_argument(
        "--output-dir", type=Path, default=None, help="Results folder (default benchmarks/results; smoke: work dir)."
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def extra_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """What this benchmark adds to the demo's own settings (nothing by default)."""
    overrides: dict[str, Any] = dict(SMOKE_OVERRIDES) if args.smoke else {}
    if args.precision != "auto":
        overrides["train.precision"] = args.precision
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set needs KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_summary() -> dict[str, Any]:
    import torch

    from distiltune.hardware import cpu_flags, cpu_has_native_bf16

    flags = cpu_flags()
    return {
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": {flag: flag in flags for flag in RECORDED_CPU_FLAGS},
        "cpu_native_bf16": cpu_has_native_bf16(),
        "cpu_amx": "amx_bf16" in flags,
        "cpu_avx512": "avx512f" in flags,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def one_demo(demo: Any, work: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """One ``run_demo`` call, timed; what it scored and what it ran with."""
    started = time.perf_counter()
    result = demo.run_demo(output_dir=str(work), extra_overrides=overrides)
    wall = time.perf_counter() - started
    metrics = result.run.metrics
    env_path = result.run.dir / "env.json"
    speed = json.loads(env_path.read_text(encoding="utf-8")).get("speed", {}) if env_path.exists() else {}
    # The preset decides how long reviews are read; it changed once (head -> head_tail), so each run records it.
    return {
        "wall_seconds": round(wall, 2),
        "train_seconds": metrics.get("train_seconds"),
        "train_samples_per_second": metrics.get("train_samples_per_second"),
        "train_rows": metrics.get("train_rows"),
        "test_accuracy": metrics.get("test", {}).get("accuracy"),
        "test_f1_macro": metrics.get("test", {}).get("f1_macro"),
        "test_rows": _support(metrics.get("test", {})),
        "precision": metrics.get("precision"),
        "device": metrics.get("device"),
        "long_text": result.run.config.data.long_text,  # the resolved config, as written to config.yaml
        "cpu_bf16_speedup": speed.get("cpu_bf16_speedup"),
        "predictions": [prediction["label"] for prediction in result.predictions],
        "run_dir": str(result.run.dir),
    }


def _support(split_metrics: dict[str, Any]) -> int | None:
    per_class = split_metrics.get("per_class")
    if isinstance(per_class, dict):
        return sum(int(values.get("support", 0)) for values in per_class.values())
    return None


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def spread(key: str) -> dict[str, float] | None:
        values = [run[key] for run in runs if isinstance(run.get(key), int | float)]
        if not values:
            return None
        return {"median": round(statistics.median(values), 4), "min": min(values), "max": max(values)}

    return {
        "repeats": len(runs),
        "wall_seconds": spread("wall_seconds"),
        "train_seconds": spread("train_seconds"),
        "test_accuracy": spread("test_accuracy"),
        "precisions": sorted({str(run.get("precision")) for run in runs}),
    }


def results_path(output_dir: Path, args: argparse.Namespace, host: str) -> Path:
    date = datetime.date.today().isoformat()
    prefix = "demo_smoke" if args.smoke else "demo"
    suffix = "" if args.precision == "auto" else f"_{args.precision}"
    return output_dir / f"{prefix}_{date}_{host}{suffix}.json"


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    started = time.perf_counter()
    from distiltune.training import demo  # torch and transformers load here: timed as the import cost

    import_seconds = time.perf_counter() - started
    overrides = extra_overrides(args)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="distiltune-demo-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    output_dir = args.output_dir or (work if args.smoke else RESULTS)
    output_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_summary()
    path = results_path(output_dir, args, machine["host"])
    results: dict[str, Any] = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "hardware": machine,
        "args": {
            "repeats": args.repeats,
            "precision": args.precision,
            "smoke": args.smoke,
            "overrides": args.overrides,
        },
        "demo_settings": demo.demo_overrides(output_dir="<work dir>"),
        "extra_overrides": overrides,
        "import_seconds": round(import_seconds, 2),
        "runs": [],
    }
    for index in range(args.repeats):
        run = one_demo(demo, work, overrides)
        results["runs"].append(run)
        results["summary"] = summarize(results["runs"])
        path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(
            f"demo {index + 1}/{args.repeats}: {run['wall_seconds']:.1f} s wall, {run['train_seconds']} s training,"
            f" test accuracy {run['test_accuracy']}, precision {run['precision']}",
            file=sys.stderr,
        )
    if machine["cpu_native_bf16"]:
        # The ratio precision=auto decides on (measured after the runs, so it costs them nothing; cached when a
        # run already measured it in this process).
        from distiltune.hardware import cpu_bf16_speedup

        results["hardware"]["cpu_bf16_matmul_speedup"] = round(cpu_bf16_speedup(), 2)
        path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"Wrote {path}", file=sys.stderr)
    return path


if __name__ == "__main__":
    main()
