"""Tuning methods side by side on real data with the offline pretrained MiniLM (all-MiniLM-L6-v2).

It runs ``distiltune.compare`` per task (each comparison directory holds its report.html), then once more with
our MLP head (mean pooling) for ``--mlp-methods``.

Tasks: an IMDb subset from ../shared/data/imdb (train rows from train.jsonl, a validation slice from the rest
of train, evaluation on rows of test.jsonl) and GLUE RTE from ../shared/data/rte (train / dev; dev is the
evaluation split, as in the literature). Every method sees the same splits, tokenizer and max length; each
runs at its own default learning rate unless --lr is given.

The full benchmark (about an hour per seed on 2 CPU cores; minutes on a GPU):

    .venv/bin/python benchmarks/methods.py --train-size 2000 --eval-size 2000 --epochs 3 --seeds 1

A smoke run: ``--train-size 200 --eval-size 200 --rte-train-size 200 --epochs 1 --max-length 128``.
Prints a table and writes benchmarks/results/methods_<date>_<host>.json (after every comparison, so an
interrupted benchmark keeps what it measured).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
METHODS = ("full", "lora", "prompt", "prefix", "head", "untuned", "tfidf")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="imdb,rte", help="Comma-separated: imdb, rte.")
    parser.add_argument("--methods", default=",".join(METHODS), help="Comma-separated methods to compare.")
    parser.add_argument(
        "--mlp-methods",
        default="head",
        help="Methods compared again with our MLP head (mean pooling); empty to skip.",
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


def compare_task(task: str, data: dict[str, Any], methods: list[str], mlp: bool, args: argparse.Namespace) -> Any:
    """One ``distiltune.compare`` over ``methods`` x seeds on identical splits (with our MLP head when ``mlp``)."""
    import distiltune

    overrides = {
        **data,
        "model.name": args.model,
        "train.epochs": args.epochs,
        "train.batch_size": args.batch_size,
    }
    if mlp:
        # all-MiniLM-L6-v2 was trained as a mean-pooling sentence encoder: our MLP head with mean pooling.
        overrides.update({"model.head": "mlp", "model.pooling": "mean"})
    if args.lr is not None:
        overrides["train.lr"] = args.lr
    for item in args.overrides:
        key, _, value = item.partition("=")
        overrides[key] = value
    label = f"{task}{' (mlp head)' if mlp else ''}"
    print(f"== {label}: {', '.join(methods)} x {args.seeds} seed(s)", file=sys.stderr, flush=True)
    return distiltune.compare(
        None, overrides, methods=methods, seeds=args.seeds, output_dir=args.runs_dir / "compare" / task
    )


def flatten(task: str, suffix: str, comparison: Any) -> list[dict[str, Any]]:
    """The comparison's per-method rows as flat numbers (mean and sd over seeds)."""
    rows = []
    for row in comparison.table:
        entry: dict[str, Any] = {
            "task": task,
            "method": row["method"] + suffix,
            "status": row["status"],
            "seeds": row["seeds_completed"],
            "error": row.get("error"),
            "trainable_params": row.get("trainable_params"),
            "compare_dir": str(comparison.dir),
        }
        for key in ("accuracy", "f1_macro", "train_seconds", "train_samples_per_second", "peak_memory_mb"):
            cell = row.get(key) or {}
            entry[key] = cell.get("mean")
            entry[f"{key}_sd"] = cell.get("sd") or 0.0
        rows.append(entry)
    return rows


def _number(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(table: list[dict[str, Any]]) -> None:
    header = (
        f"{'task':5} {'method':9} {'accuracy':>15} {'F1 (macro)':>15} {'trainable':>11} "
        f"{'time s':>8} {'samples/s':>9} {'peak MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in table:
        if not row["seeds"]:
            print(f"{row['task']:5} {row['method']:9} FAILED: {(row['error'] or row['status'])[:90]}")
            continue
        print(
            f"{row['task']:5} {row['method']:9} {row['accuracy']:.4f}±{row['accuracy_sd']:.4f} "
            f"{row['f1_macro']:.4f}±{row['f1_macro_sd']:.4f} {_number(row['trainable_params'], '>11,')} "
            f"{_number(row['train_seconds'], '>8.1f')} {_number(row['train_samples_per_second'], '>9.1f')} "
            f"{_number(row['peak_memory_mb'], '>8.0f')}"
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
    mlp_methods = [m.strip() for m in args.mlp_methods.split(",") if m.strip()]
    table: list[dict[str, Any]] = []
    for task in tasks:
        table += flatten(task, "", compare_task(task, data[task], methods, False, args))
        write_results(output, args, table)  # after every comparison: an interrupted benchmark keeps what it measured
        if mlp_methods:
            table += flatten(task, "+mlp", compare_task(task, data[task], mlp_methods, True, args))
            write_results(output, args, table)
    print_table(table)
    print(f"Wrote {output}")


def write_results(output: Path, args: argparse.Namespace, table: list[dict[str, Any]]) -> None:
    import torch

    output.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    environment = {
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    result = {"settings": settings, "environment": environment, "table": table}
    output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
