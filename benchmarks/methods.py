"""Tuning methods side by side on real data with the offline pretrained MiniLM (all-MiniLM-L6-v2).

Tasks: an IMDb subset from ../shared/data/imdb (train rows from train.jsonl, a validation slice from the rest
of train, evaluation on rows of test.jsonl) and GLUE RTE from ../shared/data/rte (train / dev; dev is the
evaluation split, as in the literature). Every method sees the same splits, tokenizer and max length; each
runs at its own default learning rate unless --lr is given.

The full benchmark (about an hour per seed on 2 CPU cores; minutes on a GPU):

    .venv/bin/python benchmarks/methods.py --train-size 2000 --eval-size 2000 --epochs 3 --seeds 1

A smoke run: ``--train-size 200 --eval-size 200 --rte-train-size 200 --epochs 1 --max-length 128``.
Prints a table and writes benchmarks/results/methods_<date>_<host>.json (after every run, so an interrupted
benchmark keeps what it measured).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
METHODS = ("full", "lora", "prompt", "prefix", "head", "head+mlp")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="imdb,rte", help="Comma-separated: imdb, rte.")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help="Comma-separated tuning methods; append +mlp for the MLP head with mean pooling (e.g. head+mlp).",
    )
    parser.add_argument("--model", default="minilm", help="Encoder (default: the packaged offline MiniLM).")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Folder holding imdb/ and rte/.")
    parser.add_argument("--train-size", type=int, default=2000, help="IMDb training reviews (RTE uses all 2,490).")
    parser.add_argument("--eval-size", type=int, default=2000, help="IMDb test reviews evaluated on.")
    parser.add_argument("--validation-size", type=int, default=500, help="IMDb validation rows (best checkpoint).")
    parser.add_argument("--max-length", type=int, default=256, help="Max tokens for IMDb (RTE uses 128).")
    parser.add_argument("--rte-train-size", type=int, default=None, help="RTE training pairs (default: all 2,490).")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=None, help="One lr for every method (default: each its own).")
    parser.add_argument("--seeds", type=int, default=1, help="Number of seeds (42, 43, ...).")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="Extra config override.")
    parser.add_argument("--runs-dir", type=Path, default=None, help="Where run directories go (default: a temp dir).")
    parser.add_argument("--output", type=Path, default=None, help="Results JSON path.")
    return parser.parse_args()


def prepare_imdb(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """train / validation / test JSONL files cut from the shared IMDb copy (its files are already shuffled)."""
    source = args.data / "imdb"
    train_rows = pd.read_json(source / "train.jsonl", lines=True)
    test_rows = pd.read_json(source / "test.jsonl", lines=True)
    end = args.train_size + args.validation_size
    if end > len(train_rows):
        raise SystemExit(f"--train-size + --validation-size must be <= {len(train_rows)}")
    folder.mkdir(parents=True, exist_ok=True)
    columns = ["text", "label"]
    train_rows.iloc[: args.train_size][columns].to_json(folder / "train.jsonl", orient="records", lines=True)
    train_rows.iloc[args.train_size : end][columns].to_json(folder / "validation.jsonl", orient="records", lines=True)
    test_rows.iloc[: args.eval_size][columns].to_json(folder / "test.jsonl", orient="records", lines=True)
    return {
        "data.dataset": str(folder),
        "data.label_names": ["neg", "pos"],
        "data.max_length": args.max_length,
    }


def prepare_rte(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "data.dataset": str(args.data / "rte"),
        "data.text_column": "sentence1",
        "data.text_pair_column": "sentence2",
        "data.label_column": "label",
        "data.label_names": ["entailment", "not_entailment"],
        "data.max_length": 128,
        "data.max_train_samples": args.rte_train_size,
    }


def run_one(task: str, method: str, seed: int, data: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import distiltune

    method_name, _, head = method.partition("+")
    overrides = {
        **data,
        "model.name": args.model,
        "method.name": method_name,
        "train.epochs": args.epochs,
        "train.batch_size": args.batch_size,
        "train.seed": seed,
        "run.output_dir": str(args.runs_dir / task),
    }
    if head == "mlp":
        # all-MiniLM-L6-v2 was trained as a mean-pooling sentence encoder: our MLP head with mean pooling.
        overrides.update({"model.head": "mlp", "model.pooling": "mean"})
    elif head:
        raise SystemExit(f"Unknown method suffix '+{head}' (only +mlp).")
    if args.lr is not None:
        overrides["train.lr"] = args.lr
    for item in args.overrides:
        key, _, value = item.partition("=")
        overrides[key] = value
    started = time.perf_counter()
    try:
        run = distiltune.train(None, overrides)
    except Exception as err:  # a failing method is reported, the others still run
        traceback.print_exc()
        return {"task": task, "method": method, "seed": seed, "error": f"{type(err).__name__}: {err}"}
    metrics = run.metrics
    evaluated = metrics.get("test") or metrics["validation"]
    return {
        "task": task,
        "method": method,
        "seed": seed,
        "run_dir": str(run.dir),
        "lr": run.config.train.lr,
        "split": "test" if "test" in metrics else "validation",
        "accuracy": evaluated["accuracy"],
        "f1_macro": evaluated["f1_macro"],
        "trainable_params": metrics["trainable_params"],
        "trainable_percent": metrics["trainable_percent"],
        "train_seconds": metrics["train_seconds"],
        "train_samples_per_second": metrics["train_samples_per_second"],
        "peak_memory_mb": metrics["peak_memory_mb"],
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table = []
    for key in dict.fromkeys((row["task"], row["method"]) for row in rows):
        group = [row for row in rows if (row["task"], row["method"]) == key]
        done = [row for row in group if "error" not in row]
        entry: dict[str, Any] = {"task": key[0], "method": key[1], "seeds": len(done)}
        if not done:
            entry["error"] = group[0]["error"]
            table.append(entry)
            continue
        for metric in ("accuracy", "f1_macro"):
            values = [row[metric] for row in done]
            entry[metric] = statistics.fmean(values)
            entry[f"{metric}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        for metric in ("trainable_params", "trainable_percent", "lr"):
            entry[metric] = done[0][metric]
        for metric in ("train_seconds", "train_samples_per_second", "peak_memory_mb"):
            entry[metric] = statistics.fmean(row[metric] for row in done)
        table.append(entry)
    return table


def print_table(table: list[dict[str, Any]]) -> None:
    header = (
        f"{'task':5} {'method':8} {'accuracy':>15} {'F1':>15} {'trainable':>11} {'%':>7} {'lr':>7} "
        f"{'time s':>8} {'samples/s':>9} {'peak MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in table:
        if "error" in row:
            print(f"{row['task']:5} {row['method']:8} FAILED: {row['error'][:90]}")
            continue
        print(
            f"{row['task']:5} {row['method']:8} {row['accuracy']:.4f}±{row['accuracy_sd']:.4f} "
            f"{row['f1_macro']:.4f}±{row['f1_macro_sd']:.4f} {row['trainable_params']:>11,} "
            f"{row['trainable_percent']:>7.3f} {row['lr']:>7.0e} {row['train_seconds']:>8.1f} "
            f"{row['train_samples_per_second'] or 0:>9.1f} {row['peak_memory_mb']:>8.0f}"
        )


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    args.runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="distiltune-methods-"))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    data = {}
    for task in tasks:
        if task == "imdb":
            data[task] = prepare_imdb(args, args.runs_dir / "data" / "imdb")
        elif task == "rte":
            data[task] = prepare_rte(args)
        else:
            raise SystemExit(f"Unknown task {task!r}: use imdb and/or rte.")
    stamp = time.strftime("%Y-%m-%d")
    output = args.output or REPO / "benchmarks" / "results" / f"methods_{stamp}_{platform.node()}.json"
    rows: list[dict[str, Any]] = []
    for task in tasks:
        for seed in range(42, 42 + args.seeds):
            for method in methods:
                print(f"== {task} / {method} / seed {seed}", file=sys.stderr, flush=True)
                rows.append(run_one(task, method, seed, data[task], args))
                write_results(output, args, rows)  # after every run: an interrupted benchmark keeps what it measured
    print_table(summarise(rows))
    print(f"Wrote {output}")


def write_results(output: Path, args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    import torch

    output.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    environment = {
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    result = {"settings": settings, "environment": environment, "table": summarise(rows), "runs": rows}
    output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
