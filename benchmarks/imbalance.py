"""Does class-imbalance handling help MiniLM on SST-2 at 1:10? No handling against class weights, focal loss and a
tuned decision threshold, with the minority class negative and then positive (issue 18).

Fixed before any data was seen (the design, the test and the margin):

* **Data.** From ``sst2/train.tsv`` (rows identical to a test sentence dropped), per seed: ``--majority-train``
  rows (default 5,000) of the majority class and a tenth as many of the minority class for training, and 1,000 +
  100 other rows for validation (the same 1:10; the threshold is tuned and the best checkpoint picked on it).
  Test: the labelled SST-2 test set, ``sst2/test.tsv``, resampled to the same ratio: every test sentence of the
  majority class (909 positive or 912 negative) and a seeded draw of a tenth as many of the minority class (91).
  That file is the SST test split with the original SST labels (as in SentEval): GLUE's own test labels are
  hidden and GLUE's dev set is held back in ../shared/data, so it is the only labelled SST-2 test set there. Each
  seed draws its own rows; every variant of a seed sees the same rows (paired comparison).
* **Directions.** Minority = negative (label 0), then minority = positive (label 1).
* **Variants.** ``none`` (plain cross-entropy, argmax), ``balanced`` (``train.class_weights: balanced``, scikit-
  learn's n / (2 x count) weights), ``focal`` (``train.loss: focal``, ``train.focal_gamma: 2``, unweighted), and
  ``threshold`` (plain cross-entropy, ``train.tune_threshold: true``: the threshold on the minority class's
  probability that maximises its F1 on validation, ``train.threshold_metric: f1``).
* **Model.** MiniLM (``model.name: minilm``), method full, max length 64, 2 epochs, batch 16, lr 5e-5, best
  checkpoint by validation macro-F1 (the same for every variant).
* **Seeds.** 42, 43, 44, 45, 46.
* **Measure.** On the test split, in points (x100): macro-F1 and the minority class's recall.
* **Test and margin.** For each direction and variant: the per-seed paired difference variant - none, its mean,
  sd and one-sided 95% lower confidence bound (Student t, n - 1 degrees of freedom). The issue's target is met
  when the mean difference is at least **+10 points of minority recall and +3 points of macro-F1**; it is *shown*
  when both lower bounds reach those margins; an improvement is shown when both lower bounds are above 0.
  Mean +- sd over seeds is reported for every variant's own scores.

Run from the repository root (``--data /work/shared/data`` from a worktree other than /work/main)::

    .venv/bin/python benchmarks/imbalance.py                              # everything: 2 x 4 x 5 runs
    .venv/bin/python benchmarks/imbalance.py --directions negative --seeds 42,43,44 --variants none,balanced
    .venv/bin/python benchmarks/imbalance.py --prepare-only               # write and describe the data, no training
    .venv/bin/python benchmarks/imbalance.py --seeds 45,46 --append results/imbalance_X.json   # more seeds

Writes ``benchmarks/results/imbalance_<date>_<host>.json`` (or the ``--append`` file) after every run and prints a
table.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibration import LABEL_NAMES, offline_distiltune, read_sst2, write_folder  # noqa: E402  (a sibling script)
from results_file import dated_result_path, load_result_file, refuse_unpoolable  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
SEEDS = "42,43,44,45,46"
RATIO = 10
TARGET_RECALL_POINTS = 10.0
TARGET_F1_POINTS = 3.0
VARIANTS: dict[str, dict[str, Any]] = {
    "none": {},
    "balanced": {"train.class_weights": "balanced"},
    "focal": {"train.loss": "focal", "train.focal_gamma": 2.0},
    "threshold": {"train.tune_threshold": True, "train.threshold_metric": "f1"},
    # Not part of the fixed design; available with --variants.
    "focal+balanced": {"train.loss": "focal", "train.focal_gamma": 2.0, "train.class_weights": "balanced"},
}
DESIGN_VARIANTS = "none,balanced,focal,threshold"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Folder holding sst2/.")
    parser.add_argument("--directions", default="negative,positive", help="Minority classes, comma-separated.")
    parser.add_argument("--variants", default=DESIGN_VARIANTS, help=f"Comma-separated, from {', '.join(VARIANTS)}.")
    parser.add_argument("--seeds", default=SEEDS, help=f"Comma-separated seeds (fixed design: {SEEDS}).")
    parser.add_argument("--majority-train", type=int, default=5000, help="Majority-class training rows.")
    parser.add_argument("--majority-validation", type=int, default=1000, help="Majority-class validation rows.")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--workdir", type=Path, default=None, help="Data and run folders (default: a temp dir).")
    parser.add_argument("--output", type=Path, default=None, help="Result file (default: results/imbalance_...).")
    parser.add_argument(
        "--append",
        type=Path,
        default=None,
        help="Add runs to this result file (same settings; measured runs skipped).",
    )
    parser.add_argument("--prepare-only", action="store_true", help="Write the data folders, print their sizes.")
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants.split(",") if v and v not in VARIANTS]
    if unknown or "none" not in args.variants.split(","):
        parser.error(f"--variants must include none and come from {', '.join(VARIANTS)}; got {args.variants}")
    return args


# --- data ----------------------------------------------------------------------------------------------------


def prepare_imbalanced(
    source: Path,
    target: Path,
    minority: str,
    seed: int,
    majority_train: int = 5000,
    majority_validation: int = 1000,
    ratio: int = RATIO,
) -> dict[str, dict[str, int]]:
    """Write train/validation/test.jsonl at ``ratio``:1 (majority:minority) for one seed and direction."""
    minority_id = LABEL_NAMES.index(minority)
    majority_id = 1 - minority_id
    test = read_sst2(source / "test.tsv")
    train = read_sst2(source / "train.tsv")
    train = train[~train["text"].isin(set(test["text"]))].sample(frac=1.0, random_state=seed)
    major, minor = train[train["label"] == majority_id], train[train["label"] == minority_id]
    minor_train, minor_validation = majority_train // ratio, majority_validation // ratio
    if len(major) < majority_train + majority_validation or len(minor) < minor_train + minor_validation:
        raise SystemExit(f"SST-2 train.tsv is too small for {majority_train} + {majority_validation} majority rows.")
    test_major = test[test["label"] == majority_id]
    test_minor = test[test["label"] == minority_id].sample(n=round(len(test_major) / ratio), random_state=seed)

    def shuffled(*parts: pd.DataFrame) -> pd.DataFrame:
        return pd.concat(parts).sample(frac=1.0, random_state=seed)

    splits = {
        "train": shuffled(major.iloc[:majority_train], minor.iloc[:minor_train]),
        "validation": shuffled(
            major.iloc[majority_train : majority_train + majority_validation],
            minor.iloc[minor_train : minor_train + minor_validation],
        ),
        "test": shuffled(test_major, test_minor),
    }
    return write_folder(target, splits)


def run_overrides(folder: Path, variant: str, seed: int, args: argparse.Namespace, runs_dir: Path) -> dict:
    """The config of one run: the fixed design plus the variant's planned keys."""
    overrides: dict[str, Any] = {
        "data.dataset": str(folder),
        "data.label_names": LABEL_NAMES,
        "data.max_length": 64,
        "model.name": "minilm",
        "method.name": "full",
        "train.epochs": args.epochs,
        "train.batch_size": args.batch_size,
        "train.lr": args.lr,
        "train.metric": "f1_macro",
        "train.seed": seed,
        "run.output_dir": str(runs_dir),
        **VARIANTS[variant],
    }
    for item in args.overrides:
        key, _, value = item.partition("=")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


# --- statistics ------------------------------------------------------------------------------------------------


def collect(metrics: dict[str, Any], minority: str) -> dict[str, Any]:
    """Macro-F1 and the minority class's recall (points) on the test split of one run's metrics.json."""
    test = metrics["test"]
    row = {
        "f1_macro": 100 * test["f1_macro"],
        "minority_recall": 100 * test["per_class"][minority]["recall"],
        "minority_precision": 100 * test["per_class"][minority]["precision"],
        "accuracy": 100 * test["accuracy"],
    }
    if metrics.get("threshold"):
        row["threshold"] = metrics["threshold"]["value"]
    return row


def mean_sd(values: list[float]) -> dict[str, float | None]:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else None}


def lower_bound(values: list[float], confidence: float = 0.95) -> float | None:
    """One-sided lower confidence bound of the mean (Student t); None below two values."""
    if len(values) < 2:
        return None
    from scipy import stats

    se = statistics.stdev(values) / math.sqrt(len(values))
    return statistics.fmean(values) - float(stats.t.ppf(confidence, len(values) - 1)) * se


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per direction: every variant's mean +- sd, and each variant's paired differences from ``none`` with the
    verdicts of the fixed design (only seeds where both runs finished count)."""
    out: dict[str, Any] = {}
    for minority in sorted({run["minority"] for run in runs}):
        direction: dict[str, Any] = {}
        by_key = {(run["variant"], run["seed"]): run for run in runs if run["minority"] == minority}
        for variant in sorted({variant for variant, _ in by_key}):
            seeds = sorted(seed for v, seed in by_key if v == variant)
            scores = {
                metric: mean_sd([by_key[variant, s][metric] for s in seeds])
                for metric in ("f1_macro", "minority_recall")
            }
            entry: dict[str, Any] = {"seeds": seeds, **scores}
            paired = [s for s in seeds if ("none", s) in by_key]
            if variant != "none" and paired:
                recall = [by_key[variant, s]["minority_recall"] - by_key["none", s]["minority_recall"] for s in paired]
                f1 = [by_key[variant, s]["f1_macro"] - by_key["none", s]["f1_macro"] for s in paired]
                recall_low, f1_low = lower_bound(recall), lower_bound(f1)
                entry["versus_none"] = {
                    "paired_seeds": paired,
                    "minority_recall": {**mean_sd(recall), "lower_95": recall_low},
                    "f1_macro": {**mean_sd(f1), "lower_95": f1_low},
                    "target_met": statistics.fmean(recall) >= TARGET_RECALL_POINTS
                    and statistics.fmean(f1) >= TARGET_F1_POINTS,
                    "target_shown": recall_low is not None
                    and f1_low is not None
                    and recall_low >= TARGET_RECALL_POINTS
                    and f1_low >= TARGET_F1_POINTS,
                    "improvement_shown": recall_low is not None
                    and f1_low is not None
                    and recall_low > 0
                    and f1_low > 0,
                }
            direction[variant] = entry
        out[f"minority_{minority}"] = direction
    return out


def format_table(summary: dict[str, Any]) -> str:
    lines = [
        f"{'direction':<19} {'variant':<15} {'macro-F1':>14} {'min. recall':>14} {'dF1':>7} {'dRecall':>8}  target"
    ]
    for direction, variants in summary.items():
        for variant, entry in variants.items():
            f1, recall = entry["f1_macro"], entry["minority_recall"]
            versus = entry.get("versus_none")
            difference = (
                f"{versus['f1_macro']['mean']:>+7.1f} {versus['minority_recall']['mean']:>+8.1f}  "
                f"{'met' if versus['target_met'] else 'not met'}"
                if versus
                else ""
            )
            lines.append(
                f"{direction:<19} {variant:<15} {f1['mean']:>7.1f} +- {_sd(f1)} "
                f"{recall['mean']:>7.1f} +- {_sd(recall)} {difference}"
            )
    return "\n".join(lines)


def _sd(summary: dict[str, float | None]) -> str:
    return "   -" if summary["sd"] is None else f"{summary['sd']:>4.1f}"


# --- main ------------------------------------------------------------------------------------------------------


#: Arguments that must match for runs to be pooled into one result file (seeds, directions and variants may differ).
POOLED_SETTINGS = ("majority_train", "majority_validation", "epochs", "batch_size", "lr", "overrides")


def results_to_extend(path: Path, settings: dict[str, str]) -> dict[str, Any]:
    """The result file ``--append`` adds runs to, after checking it was measured with the same settings."""
    result = load_result_file(path, "imbalance")
    refuse_unpoolable(settings, result["args"], path, POOLED_SETTINGS)
    result.setdefault("appended_args", []).append(settings)
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    directions = [name.strip() for name in args.directions.split(",") if name.strip()]
    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]
    root = args.workdir or Path(tempfile.mkdtemp(prefix="distiltune-imbalance-"))
    folders = {}
    for minority in directions:
        for seed in seeds:
            folder = root / "data" / f"minority-{minority}-seed{seed}"
            sizes = prepare_imbalanced(
                args.data / "sst2", folder, minority, seed, args.majority_train, args.majority_validation
            )
            folders[minority, seed] = folder
            print(f"minority {minority}, seed {seed}: {json.dumps(sizes)}", flush=True)
    if args.prepare_only:
        return

    distiltune = offline_distiltune()
    output = args.output or dated_result_path("imbalance")
    result: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "runs": []}
    if args.append is not None:
        output, result = args.append, results_to_extend(args.append, result["args"])
    output.parent.mkdir(parents=True, exist_ok=True)
    measured = {(row["minority"], row["seed"], row["variant"]) for row in result["runs"]}
    for minority in directions:
        for seed in seeds:
            for variant in variants:
                if (minority, seed, variant) in measured:
                    print(f"minority {minority}, seed {seed}, {variant}: already measured, skipped", flush=True)
                    continue
                overrides = run_overrides(folders[minority, seed], variant, seed, args, root / "runs")
                run = distiltune.train(None, overrides)
                row = {"minority": minority, "seed": seed, "variant": variant, "run_dir": str(run.dir)}
                row.update(collect(run.metrics, minority))
                result["runs"].append(row)
                result["summary"] = summarize(result["runs"])
                output.write_text(json.dumps(result, indent=2), encoding="utf-8")
                print(json.dumps(row), flush=True)
    print(format_table(result["summary"]))
    print(f"Written to {output}")


if __name__ == "__main__":
    sys.exit(main())
