"""How should a review longer than max_length be read? ``data.long_text`` head (today), tail, head_tail and chunks
(window logits aggregated by mean and by max) on IMDb with the packaged MiniLM, at max length 128 and 256, per seed.

Design
    Per seed: ``--train-samples`` training reviews drawn from IMDb train with that seed, ``--validation-samples``
    more (disjoint) as the validation file, and one fixed set of ``--eval-samples`` test reviews (drawn with seed 0)
    for every run. Every mode trains with the same settings (2 epochs, batch 16, lr 5e-5, one evaluation at the end,
    so the final model is the last step's); with chunks every window is a training row carrying its review's label,
    so chunks takes more optimizer steps per epoch: that is part of its cost. Training goes through
    ``distiltune.train(None, overrides)`` with the ``data.long_text`` keys; the run is loaded with
    ``distiltune.load`` and scored through ``distiltune.inference.batched.predict_logits`` (the one batched path
    that predict, evaluate, the ONNX backend and serve share) with the run's own batching. A chunks run is scored
    twice, with ``window_aggregation`` mean and max (one training). Each run's ``Classifier.predict_proba`` is
    checked against the direct call, so the run's saved mode is what is measured.

Reported per max length and mode
    Accuracy mean ± sd over seeds; training documents/s (training reviews x epochs / training seconds) and inference
    documents/s (test reviews / prediction seconds, after a warm-up), means over seeds; windows per review and the
    share of reviews the mode leaves partly unread.

Decision rule (fixed before any data was measured; the script applies it and writes the verdict)
    1. Baseline: head at the same max length. Each candidate (tail, head_tail, chunks-mean, chunks-max) is compared
       with head seed by seed (same training reviews, same seed): gain = accuracy difference in points.
    2. A candidate WINS at a max length when all of these hold:
       a. its mean gain is at least +1.0 point (``MIN_GAIN_POINTS``);
       b. the one-sided 95% lower bound of the paired t interval of the gain is above 0 (``CONFIDENCE``; needs at
          least 3 seeds);
       c. its cost is acceptable: its mean training documents/s and its mean inference documents/s are both at least
          0.5 x head's (``MIN_SPEED_RATIO``: at most twice as slow).
    3. The default ``data.long_text`` of the long-text presets (imdb, imdb-truncated, imdb-demo) becomes the candidate
       that wins at both 128 and 256; of several, the one with the larger mean gain averaged over the two lengths.
       If none wins at both, head stays the default.
    4. If chunks is chosen, ``data.window_aggregation`` defaults to max only when chunks-max beats chunks-mean by 2a
       and 2b (their cost is the same); otherwise mean.

Config keys: ``data.long_text``, ``data.head_tokens``, ``data.stride``, ``data.max_windows``,
``data.window_aggregation`` (docs/real-world-text.md). ``--plan`` runs the data preparation alone (no training):
token lengths and, per max length and mode, the share of reviews left partly unread and the windows per review.

Run from the repository root::

    .venv/bin/python benchmarks/long_text.py                                   # 3 seeds, 128 and 256, every mode
    .venv/bin/python benchmarks/long_text.py --plan                            # data preparation only, seconds
    .venv/bin/python benchmarks/long_text.py --seeds 45,46 --append results/long_text_X.json   # more seeds
    .venv/bin/python benchmarks/long_text.py --train-samples 32 --eval-samples 32 --seeds 1 --epochs 1  # smoke

Writes ``benchmarks/results/long_text_<date>_<host>.json`` (or the ``--append`` file) after every training run and
prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import load_result_file, refuse_unpoolable  # noqa: E402  (a sibling script, not a package)
from throughput import DEFAULT_DATA, REPO_ROOT, hardware_summary  # noqa: E402

LABEL_NAMES = ["neg", "pos"]
MODES = ("head", "tail", "head_tail", "chunks")
AGGREGATIONS = ("mean", "max")
BASELINE = "head"
MIN_GAIN_POINTS = 1.0
CONFIDENCE = 0.95
MIN_SPEED_RATIO = 0.5
#: Settings that must agree before seeds may be pooled in one result file.
COMPARABLE_SETTINGS = (
    "model",
    "train_samples",
    "validation_samples",
    "eval_samples",
    "epochs",
    "batch_size",
    "lr",
    "head_tokens",
    "stride",
    "max_windows",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Folder with IMDb train.jsonl and test.jsonl.")
    parser.add_argument("--model", default="minilm", help="'minilm' (packaged) or a local model directory.")
    parser.add_argument("--seeds", default="42,43,44", help="Comma-separated seeds (3 or more for the verdict).")
    parser.add_argument("--max-lengths", default="128,256", help="Comma-separated max lengths.")
    parser.add_argument("--modes", default=",".join(MODES), help="Comma-separated data.long_text modes (head first).")
    parser.add_argument("--train-samples", type=int, default=2000)
    parser.add_argument("--validation-samples", type=int, default=200)
    parser.add_argument("--eval-samples", type=int, default=2000)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--head-tokens", type=int, help="data.head_tokens for head_tail (unset: the library default).")
    parser.add_argument("--stride", type=int, help="data.stride for chunks (unset: the library default).")
    parser.add_argument("--max-windows", type=int, help="data.max_windows for chunks (unset: the library default).")
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    parser.add_argument("--append", type=Path, help="Add runs to this result file (same settings; measured skipped).")
    parser.add_argument("--plan", action="store_true", help="Data preparation and truncation figures only.")
    args = parser.parse_args(argv)
    args.seed_list = [int(seed) for seed in args.seeds.split(",")]
    args.max_length_list = [int(length) for length in args.max_lengths.split(",")]
    args.mode_list = [mode.strip() for mode in args.modes.split(",")]
    unknown = [mode for mode in args.mode_list if mode not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    if BASELINE not in args.mode_list:
        parser.error("--modes must include head: every other mode is judged against it")
    return args


# --- data preparation (no model, no training) ---------------------------------------------------------------


def read_reviews(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """IMDb train and test as ``text``/``label`` frames."""
    frames = []
    for name in ("train.jsonl", "test.jsonl"):
        path = data_dir / name
        if not path.is_file():
            raise SystemExit(f"error: {path} not found; pass --data FOLDER (IMDb train.jsonl and test.jsonl).")
        frames.append(pd.read_json(path, lines=True)[["text", "label"]])
    return frames[0], frames[1]


def draw_splits(
    train: pd.DataFrame,
    test: pd.DataFrame,
    train_samples: int,
    validation_samples: int,
    eval_samples: int,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The seed's training and validation reviews (disjoint, both from IMDb train) and the fixed test reviews (the
    same for every seed)."""
    if train_samples + validation_samples > len(train):
        raise SystemExit(f"error: {train_samples} + {validation_samples} reviews asked, IMDb train has {len(train)}.")
    drawn = train.sample(n=train_samples + validation_samples, random_state=seed).reset_index(drop=True)
    fixed_test = test.sample(n=min(eval_samples, len(test)), random_state=0).reset_index(drop=True)
    return (
        drawn.iloc[:train_samples].reset_index(drop=True),
        drawn.iloc[train_samples:].reset_index(drop=True),
        fixed_test,
    )


def write_data_folder(train: pd.DataFrame, validation: pd.DataFrame, work: Path) -> Path:
    """``work/data`` with train.jsonl and validation.jsonl for ``distiltune.train``; the test set is scored apart."""
    folder = work / "data"
    folder.mkdir(parents=True)
    train.to_json(folder / "train.jsonl", orient="records", lines=True)
    validation.to_json(folder / "validation.jsonl", orient="records", lines=True)
    return folder


def long_text_overrides(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """The ``data.*`` long-text keys of one mode: only those the mode reads (the library refuses the others)."""
    overrides: dict[str, Any] = {"data.long_text": mode}
    if mode == "head_tail" and args.head_tokens is not None:
        overrides["data.head_tokens"] = args.head_tokens
    if mode == "chunks":
        for key in ("stride", "max_windows"):
            if getattr(args, key) is not None:
                overrides[f"data.{key}"] = getattr(args, key)
    return overrides


def long_text_options(overrides: dict[str, Any], aggregation: str | None = None) -> Any:
    """The library's options for these overrides (``aggregation`` replaces the window aggregation)."""
    from distiltune.data.long_text import LongTextOptions

    data = {key.partition(".")[2]: value for key, value in overrides.items() if key.startswith("data.")}
    if aggregation is not None:
        data["window_aggregation"] = aggregation
    return LongTextOptions.from_data_config(SimpleNamespace(**data))


def training_overrides(
    args: argparse.Namespace, mode: str, max_length: int, seed: int, data_dir: Path, work: Path
) -> dict[str, Any]:
    return {
        "model.name": args.model,
        "data.dataset": str(data_dir),
        "data.text_column": "text",
        "data.label_column": "label",
        "data.label_names": LABEL_NAMES,
        "data.max_length": max_length,
        **long_text_overrides(mode, args),
        "train.epochs": args.epochs,
        "train.batch_size": args.batch_size,
        "train.lr": args.lr,
        "train.seed": seed,
        # One evaluation at the end for every mode: Trainer evaluations inside the loop would cost chunks more (more
        # rows) and, until they aggregate windows, score windows rather than reviews.
        "train.eval_strategy": "steps",
        "train.eval_steps": 10**9,
        "train.logging_steps": 50,
        "run.output_dir": str(work / "runs"),
        "run.name": f"{mode}-{max_length}-{seed}",
    }


def variants(mode: str) -> list[tuple[str, str | None]]:
    """(variant name, window aggregation) pairs a trained mode is scored as: chunks once per aggregation."""
    if mode == "chunks":
        return [(f"chunks-{how}", how) for how in AGGREGATIONS]
    return [(mode, None)]


def reading_figures(tokenizer: Any, frame: pd.DataFrame, max_length: int, options: Any) -> dict[str, float]:
    """Windows per review and the share of reviews partly unread, under ``options``."""
    from distiltune.data.long_text import summarize_lengths

    summary = summarize_lengths(tokenizer, frame["text"].tolist(), None, max_length, options)
    return {
        "windows_per_review": round(float(summary.windows.mean()), 3),
        "unread_share": round(summary.truncated_fraction, 4),
        "tokens_p50": int(np.percentile(summary.lengths, 50)),
    }


# --- statistics and the decision ------------------------------------------------------------------------------


def paired_gain(gains: list[float]) -> dict[str, Any]:
    """Mean and sd of per-seed gains (points) and the one-sided ``CONFIDENCE`` paired t lower bound."""
    from scipy import stats

    result: dict[str, Any] = {"n": len(gains), "mean": round(statistics.fmean(gains), 3) if gains else None}
    if len(gains) < 2:
        return result | {"sd": None, "lower_bound": None}
    sd = statistics.stdev(gains)
    lower = statistics.fmean(gains) - float(stats.t.ppf(CONFIDENCE, len(gains) - 1)) * sd / len(gains) ** 0.5
    return result | {"sd": round(sd, 3), "lower_bound": round(lower, 3)}


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per max length and variant: accuracy mean ± sd, mean speeds, and the paired gain over head by seed."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for max_length in sorted({row["max_length"] for row in runs}):
        at_length = [row for row in runs if row["max_length"] == max_length]
        baseline = {row["seed"]: row for row in at_length if row["variant"] == BASELINE}
        per_variant: dict[str, dict[str, Any]] = {}
        for variant in dict.fromkeys(row["variant"] for row in at_length):
            rows = [row for row in at_length if row["variant"] == variant]
            accuracies = [row["accuracy"] for row in rows]
            entry: dict[str, Any] = {
                "seeds": sorted(row["seed"] for row in rows),
                "accuracy_mean": round(statistics.fmean(accuracies), 4),
                "accuracy_sd": round(statistics.stdev(accuracies), 4) if len(rows) > 1 else None,
                "train_documents_per_second": round(
                    statistics.fmean(r["train_documents_per_second"] for r in rows), 2
                ),
                "inference_documents_per_second": round(
                    statistics.fmean(r["inference_documents_per_second"] for r in rows), 2
                ),
                "windows_per_review_test": round(statistics.fmean(r["test_windows_per_review"] for r in rows), 3),
                "unread_share_test": round(statistics.fmean(r["test_unread_share"] for r in rows), 4),
            }
            if variant != BASELINE and baseline:
                paired = [row for row in rows if row["seed"] in baseline]
                gains = [100 * (row["accuracy"] - baseline[row["seed"]]["accuracy"]) for row in paired]
                entry["gain_points"] = paired_gain(gains)
                head = [baseline[row["seed"]] for row in paired]
                entry["train_speed_ratio"] = _ratio(paired, head, "train_documents_per_second")
                entry["inference_speed_ratio"] = _ratio(paired, head, "inference_documents_per_second")
            per_variant[variant] = entry
        summary[str(max_length)] = per_variant
    return summary


def _ratio(rows: list[dict[str, Any]], baseline: list[dict[str, Any]], key: str) -> float | None:
    if not rows:
        return None
    return round(statistics.fmean(row[key] for row in rows) / statistics.fmean(row[key] for row in baseline), 3)


def wins(entry: dict[str, Any]) -> dict[str, Any]:
    """Rule 2 for one variant at one max length: each condition and the verdict."""
    gain = entry.get("gain_points") or {}
    checks = {
        "gain_at_least_min": gain.get("mean") is not None and gain["mean"] >= MIN_GAIN_POINTS,
        "lower_bound_above_zero": gain.get("n", 0) >= 3
        and gain.get("lower_bound") is not None
        and gain["lower_bound"] > 0,
        "cost_acceptable": all(
            entry.get(key) is not None and entry[key] >= MIN_SPEED_RATIO
            for key in ("train_speed_ratio", "inference_speed_ratio")
        ),
    }
    return checks | {"wins": all(checks.values())}


def decide(runs: list[dict[str, Any]], required_lengths: tuple[int, ...] = (128, 256)) -> dict[str, Any]:
    """Rules 3 and 4: the default mode (and aggregation) for long-text presets, with the reasons."""
    summary = summarize(runs)
    missing = [length for length in required_lengths if str(length) not in summary]
    verdicts = {
        length: {variant: wins(entry) for variant, entry in summary[length].items() if variant != BASELINE}
        for length in summary
    }
    decision: dict[str, Any] = {"verdicts": verdicts, "default_long_text": BASELINE, "window_aggregation": None}
    if missing:
        return decision | {"reason": f"not measured at max length {', '.join(map(str, missing))}: head stays"}
    candidates = {}
    for variant in verdicts[str(required_lengths[0])]:
        if all(verdicts[str(length)].get(variant, {}).get("wins") for length in required_lengths):
            gains = [summary[str(length)][variant]["gain_points"]["mean"] for length in required_lengths]
            candidates[variant] = statistics.fmean(gains)
    if not candidates:
        return decision | {"reason": "no mode wins at every max length: head stays"}
    chosen = max(candidates, key=candidates.get)
    mode = chosen.partition("-")[0]
    decision |= {"default_long_text": mode, "mean_gain_points": round(candidates[chosen], 3)}
    if mode != "chunks":
        return decision | {"reason": f"{chosen} wins at every max length with the largest mean gain"}
    # Rule 4: max only when it beats mean by rule 2a and 2b; the two share one training, so cost does not differ.
    max_beats_mean = True
    for length in required_lengths:
        rows = [r for r in runs if r["max_length"] == length and r["variant"] in ("chunks-mean", "chunks-max")]
        by_seed: dict[int, dict[str, float]] = {}
        for row in rows:
            by_seed.setdefault(row["seed"], {})[row["variant"]] = row["accuracy"]
        gains = [100 * (v["chunks-max"] - v["chunks-mean"]) for v in by_seed.values() if len(v) == 2]
        gain = paired_gain(gains)
        beaten = gain["mean"] is not None and gain["mean"] >= MIN_GAIN_POINTS
        beaten = beaten and gain["n"] >= 3 and gain["lower_bound"] is not None and gain["lower_bound"] > 0
        max_beats_mean = max_beats_mean and beaten
    return decision | {
        "window_aggregation": "max" if max_beats_mean else "mean",
        "reason": f"{chosen} wins at every max length with the largest mean gain",
    }


# --- measuring -----------------------------------------------------------------------------------------------


def measure_run(
    args: argparse.Namespace,
    mode: str,
    max_length: int,
    seed: int,
    splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> list[dict[str, Any]]:
    """Train one mode and score it on the test reviews: one row per variant."""
    import distiltune
    from distiltune.data.long_text import LongTextOptions
    from distiltune.inference.batched import predict_logits
    from distiltune.tasks.metrics import softmax

    train, validation, test = splits
    texts, gold = test["text"].tolist(), test["label"].to_numpy()
    rows = []
    with tempfile.TemporaryDirectory(prefix="distiltune-long-text-") as work_name:
        work = Path(work_name)
        data_dir = write_data_folder(train, validation, work)
        overrides = training_overrides(args, mode, max_length, seed, data_dir, work)
        run = distiltune.train(None, overrides)
        classifier = distiltune.load(run.dir)
        saved = LongTextOptions.from_data_config(classifier.config.data)
        if saved.mode != mode:
            raise SystemExit(f"{run.dir}: config.yaml records data.long_text={saved.mode}, not {mode}: integrate it.")
        settings = classifier.inference_settings()  # the run's own batching, device and precision

        def predict(batch: list[str], options: Any) -> np.ndarray:
            return predict_logits(
                classifier.model, classifier.tokenizer, batch, None, dataclasses.replace(settings, long_text=options)
            )

        probe = texts[:32]
        if not np.allclose(classifier.predict_proba(probe), softmax(predict(probe, saved)), atol=1e-5):
            raise SystemExit(f"{run.dir}: Classifier.predict_proba does not read long texts as data.long_text={mode}.")
        train_reading = reading_figures(classifier.tokenizer, train, classifier.max_length, saved)
        train_seconds = run.metrics["train_seconds"]
        for variant, aggregation in variants(mode):
            options = long_text_options(long_text_overrides(mode, args), aggregation)
            predict(texts[:8], options)  # warm-up
            started = time.perf_counter()
            logits = predict(texts, options)
            seconds = time.perf_counter() - started
            test_reading = reading_figures(classifier.tokenizer, test, classifier.max_length, options)
            rows.append(
                {
                    "seed": seed,
                    "max_length": max_length,
                    "mode": mode,
                    "variant": variant,
                    "accuracy": round(float((logits.argmax(-1) == gold).mean()), 4),
                    "train_seconds": round(train_seconds, 2),
                    "train_documents_per_second": round(len(train) * args.epochs / train_seconds, 3),
                    "train_windows_per_review": train_reading["windows_per_review"],
                    "train_unread_share": train_reading["unread_share"],
                    "inference_seconds": round(seconds, 3),
                    "inference_documents_per_second": round(len(texts) / seconds, 2),
                    "test_windows_per_review": test_reading["windows_per_review"],
                    "test_unread_share": test_reading["unread_share"],
                    "precision": run.metrics["precision"],
                    "device": run.metrics["device"],
                }
            )
    return rows


def plan(args: argparse.Namespace) -> None:
    """Data preparation alone: splits, token lengths, and per max length and mode what is left unread."""
    from distiltune.modeling import load_tokenizer

    train, test = read_reviews(args.data)
    tokenizer = load_tokenizer(args.model)
    seed = args.seed_list[0]
    splits = draw_splits(train, test, args.train_samples, args.validation_samples, args.eval_samples, seed)
    print(f"seed {seed}: {len(splits[0])} training, {len(splits[1])} validation, {len(splits[2])} test reviews")
    for max_length in args.max_length_list:
        for mode in args.mode_list:
            options = long_text_options(long_text_overrides(mode, args)).validate(max_length)
            figures = {
                name: reading_figures(tokenizer, frame, max_length, options)
                for name, frame in (("train", splits[0]), ("test", splits[2]))
            }
            print(
                f"max length {max_length:4d} {mode:10s} "
                + "; ".join(
                    f"{name}: p50 {f['tokens_p50']} tokens, {100 * f['unread_share']:.1f}% partly unread, "
                    f"{f['windows_per_review']:.2f} windows per review"
                    for name, f in figures.items()
                )
            )


def write_results(results: dict[str, Any], target: Path) -> None:
    results["summary"] = summarize(results["runs"])
    results["decision"] = decide(results["runs"])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    args = results["args"]
    table = Table(
        title=f"IMDb, {args['model']}: {args['train_samples']} training reviews x {args['epochs']} epochs, "
        f"{args['eval_samples']} test reviews"
    )
    for column in (
        "max len",
        "mode",
        "seeds",
        "accuracy",
        "gain vs head (pts)",
        "train docs/s",
        "infer docs/s",
        "windows",
        "unread",
        "wins",
    ):
        table.add_column(column, justify="right")
    for length, per_variant in results["summary"].items():
        verdicts = results["decision"]["verdicts"].get(length, {})
        for variant, entry in per_variant.items():
            gain = entry.get("gain_points")
            sd = f" ± {entry['accuracy_sd']:.4f}" if entry["accuracy_sd"] is not None else ""
            gain_text = ""
            if gain and gain["mean"] is not None:
                bound = f" (lb {gain['lower_bound']:+.2f})" if gain.get("lower_bound") is not None else ""
                gain_text = f"{gain['mean']:+.2f}{bound}"
            table.add_row(
                length,
                variant,
                str(len(entry["seeds"])),
                f"{entry['accuracy_mean']:.4f}{sd}",
                gain_text,
                f"{entry['train_documents_per_second']:.1f}",
                f"{entry['inference_documents_per_second']:.1f}",
                f"{entry['windows_per_review_test']:.2f}",
                f"{100 * entry['unread_share_test']:.0f}%",
                "" if variant == BASELINE else ("yes" if verdicts.get(variant, {}).get("wins") else "no"),
            )
    decision = results["decision"]
    table.caption = (
        f"Default for long-text presets: data.long_text={decision['default_long_text']}"
        + (f", window_aggregation={decision['window_aggregation']}" if decision.get("window_aggregation") else "")
        + f" ({decision['reason']}). Rule: gain >= {MIN_GAIN_POINTS} pts, one-sided {int(100 * CONFIDENCE)}% lower "
        f"bound > 0, speeds >= {MIN_SPEED_RATIO}x head, at every max length."
    )
    Console(width=150).print(table)


def main() -> None:
    args = parse_args()
    if args.plan:
        plan(args)
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for mode in args.mode_list:  # a bad setting fails now, not after hours of training
        for length in args.max_length_list:
            long_text_options(long_text_overrides(mode, args)).validate(length)
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    if args.append is not None:
        results = load_result_file(args.append, "long_text")
        refuse_unpoolable(settings, results["args"], args.append, COMPARABLE_SETTINGS)
        target = args.append
    else:
        results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "args": settings, "runs": []}
        target = args.output_dir / f"long_text_{time.strftime('%Y-%m-%d')}_{socket.gethostname()}.json"
    results.setdefault("hardware", hardware_summary(device))
    results["decision_rule"] = {
        "baseline": BASELINE,
        "min_gain_points": MIN_GAIN_POINTS,
        "confidence_one_sided": CONFIDENCE,
        "min_speed_ratio": MIN_SPEED_RATIO,
        "text": __doc__.split("Decision rule")[1].split("\n\n")[0].strip(),
    }
    measured = {(row["seed"], row["max_length"], row["mode"]) for row in results["runs"]}
    train_reviews, test_reviews = read_reviews(args.data)
    for seed in args.seed_list:
        splits = draw_splits(
            train_reviews, test_reviews, args.train_samples, args.validation_samples, args.eval_samples, seed
        )
        for max_length in args.max_length_list:
            for mode in args.mode_list:
                if (seed, max_length, mode) in measured:
                    print(f"seed {seed}, max length {max_length}, {mode}: already measured, skipped", flush=True)
                    continue
                print(f"seed {seed}, max length {max_length}, {mode}: training ...", flush=True)
                rows = measure_run(args, mode, max_length, seed, splits)
                results["runs"].extend(rows)
                for row in rows:
                    print(json.dumps(row), flush=True)
                write_results(results, target)  # after every run: an interrupted benchmark keeps what it measured
    write_results(results, target)
    print_table(results)
    print(f"Results written to {target}")


if __name__ == "__main__":
    main()
