"""Does distiltune's speed cost accuracy? The naive pipeline and distiltune's defaults, trained on the same reviews
for the same epochs over several seeds, scored on one fixed held-out set.

``throughput.py`` measures speed and reports one accuracy per pipeline, but a single short run differs from another
by a point or two through the seed alone (the batch order, the head's initialisation). This script repeats both
trainings for each seed (each seed also draws its own training sample) and reports the paired difference
distiltune − naive per seed, its mean, standard error and 95% confidence interval. The issue's bar is "within 0.5
points"; the interval says how far the measurement can vouch for that.

The defaults (1,000 reviews, 2 epochs = 126 steps, max length 256) train far enough for the accuracy to mean
something. At ``throughput.py``'s budget (800 reviews, 1 epoch = 50 steps at max length 512) neither pipeline has
converged: the batch order alone (length grouping off, same seed) moved distiltune by 4 points, and on seed 43
distiltune's run was still at chance after 50 steps (0.505, naive 0.609), see
``results/accuracy_equivalence_1epoch800_2026-11-23_vm.json``.

Both models are scored the same way: fp32, through distiltune's length-sorted, dynamically padded prediction (the
logits equal padding to max length up to float rounding; ``tests/test_speed.py`` checks that), so the held-out set
can be large without hours of padded naive inference.

Run from the repository root::

    .venv/bin/python benchmarks/accuracy_equivalence.py                       # seeds 42 and 43
    .venv/bin/python benchmarks/accuracy_equivalence.py --seeds 42,43,44,45,46

Writes ``benchmarks/results/accuracy_equivalence_<date>_<host>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import (  # noqa: E402  (a sibling script, not a package)
    DEFAULT_DATA,
    LABEL_NAMES,
    REPO_ROOT,
    hardware_summary,
    load_rows,
    run_distiltune,
    train_naive,
    write_data_folder,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Folder with train.jsonl and test.jsonl.")
    parser.add_argument("--model", default="minilm", help="'minilm' (packaged) or a local model directory.")
    parser.add_argument("--seeds", default="42,43", help="Comma-separated seeds; each is one paired run.")
    parser.add_argument("--train-samples", type=int, default=1000, help="Training reviews per seed (same for both).")
    parser.add_argument("--eval-samples", type=int, default=1000, help="Held-out reviews (one fixed set).")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    args.eval_batch_size = None  # run_distiltune reads it: distiltune's own inference batching
    return args


def accuracy(model: Any, tokenizer: Any, test: Any, max_length: int) -> float:
    from distiltune.inference import predict_logits

    logits = predict_logits(model, tokenizer, test["text"].tolist(), max_length=max_length, batch_size=16)
    return float((logits.argmax(-1) == test["label"].to_numpy()).mean())


def summarize(differences: list[float]) -> dict[str, float | None]:
    """Mean, standard error and a two-sided 95% t interval of the per-seed differences (points)."""
    from scipy import stats

    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return {"mean": round(mean, 2), "sd": None, "se": None, "ci95_low": None, "ci95_high": None}
    sd = statistics.stdev(differences)
    se = sd / len(differences) ** 0.5
    half_width = float(stats.t.ppf(0.975, len(differences) - 1)) * se
    return {
        "mean": round(mean, 2),
        "sd": round(sd, 2),
        "se": round(se, 2),
        "ci95_low": round(mean - half_width, 2),
        "ci95_high": round(mean + half_width, 2),
    }


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers

    import distiltune

    transformers.logging.set_verbosity_error()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    seeds = [int(seed) for seed in args.seeds.split(",")]
    _, test = load_rows(args.data, 1, args.eval_samples, 0)  # one held-out set for every seed
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "hardware": hardware_summary(device),
        "args": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
        "runs": [],
    }
    target = args.output_dir / f"accuracy_equivalence_{time.strftime('%Y-%m-%d')}_{socket.gethostname()}.json"
    for seed in seeds:
        args.seed = seed
        train, _ = load_rows(args.data, args.train_samples, 1, seed)
        with tempfile.TemporaryDirectory(prefix="distiltune-accuracy-") as work_name:
            work = Path(work_name)
            data_dir = write_data_folder(train, test, work)
            print(f"seed {seed}: naive training ...", flush=True)
            model, tokenizer, naive = train_naive(args, train, work, device)
            naive_accuracy = accuracy(model, tokenizer, test, args.max_length)
            del model
            print(f"seed {seed}: distiltune training ...", flush=True)
            ours = run_distiltune(args, data_dir, work, device, len(train))
            classifier = distiltune.load(ours["run_dir"], precision="fp32")
            assert classifier.label_names == LABEL_NAMES
            ours_accuracy = accuracy(classifier.model, classifier.tokenizer, test, args.max_length)
        row = {
            "seed": seed,
            "naive_accuracy": naive_accuracy,
            "distiltune_accuracy": ours_accuracy,
            "difference_points": round(100 * (ours_accuracy - naive_accuracy), 2),
            "naive_train_seconds": naive["train_seconds"],
            "distiltune_train_seconds": ours["train_seconds"],
            "distiltune_precision": ours["precision"],
        }
        results["runs"].append(row)
        print(json.dumps(row), flush=True)
        write_results(results, target)  # after every seed, so an interrupted run keeps what it measured
    print_table(results)
    print(f"Results written to {target}")


def write_results(results: dict[str, Any], target: Path) -> None:
    runs = results["runs"]
    results["difference_points"] = summarize([row["difference_points"] for row in runs])
    results["naive_mean_accuracy"] = round(statistics.fmean(row["naive_accuracy"] for row in runs), 4)
    results["distiltune_mean_accuracy"] = round(statistics.fmean(row["distiltune_accuracy"] for row in runs), 4)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    args = results["args"]
    table = Table(
        title=f"Accuracy after {args['epochs']} epoch(s) on {args['train_samples']} reviews, "
        f"{args['eval_samples']} held out, max length {args['max_length']}"
    )
    for column in ("seed", "naive", "distiltune", "difference (points)"):
        table.add_column(column, justify="right")
    for row in results["runs"]:
        table.add_row(
            str(row["seed"]),
            f"{row['naive_accuracy']:.4f}",
            f"{row['distiltune_accuracy']:.4f}",
            f"{row['difference_points']:+.2f}",
        )
    summary = results["difference_points"]
    interval = (
        f" (SE {summary['se']:.2f}, 95% CI {summary['ci95_low']:+.2f} .. {summary['ci95_high']:+.2f})"
        if summary["se"] is not None
        else ""
    )
    table.add_row(
        "mean",
        f"{results['naive_mean_accuracy']:.4f}",
        f"{results['distiltune_mean_accuracy']:.4f}",
        f"{summary['mean']:+.2f}{interval}",
    )
    Console().print(table)


if __name__ == "__main__":
    main()
