"""Does distiltune's speed cost accuracy? The naive pipeline, the strong peer and distiltune's defaults, trained on
the same reviews for the same epochs over several seeds, scored on one fixed held-out set.

``throughput.py`` measures speed and reports one accuracy per pipeline, but a single short run differs from another
by a point or two through the seed alone (the batch order, the head's initialisation). This script repeats the
trainings for each seed (each seed also draws its own training sample) and reports the paired differences
distiltune − naive and distiltune − peer per seed, their mean, standard error and 95% confidence interval. The
issue's bar is "within 0.5 points"; the interval says how far the measurement can vouch for that. The verdict is a
two one-sided t-test (TOST, the usual equivalence test): the difference is shown to lie within ``--margin`` at the
5% level when the 90% interval lies inside ±margin; next to it the one-sided non-inferiority test (no worse than
−margin at 5%). The 95% interval is printed too; it is the stricter reading.

The peer is ``throughput.py``'s: the ``Trainer`` recipe a knowledgeable user writes with the same libraries
(``DataCollatorWithPadding``, ``train_sampling_strategy="group_by_length"``, bf16 where the hardware has it, SDPA,
fused AdamW). ``--skip-peer`` leaves it out.

The statistics are decided before the data: before anything trains, the script prints the plan (the comparisons,
the test, the margin, the seeds, the settings, and any of the seeds already recorded in ``--output-dir``) and the
results file keeps it under ``plan``. The default seeds, 100-115, are a range no earlier result used (1 and 42-57
were). Sixteen because the latest 14-seed run's differences had an SD of 0.9 points: with 16 seeds the one-sided
95% bound lies about 0.4 points below the mean, so non-inferiority at −0.5 can be shown if the mean difference is
above about −0.1, and equivalence if it lies within about ±0.1.

The defaults (1,000 reviews, 2 epochs = 126 steps, max length 256) train far enough for the accuracy to mean
something. At ``throughput.py``'s budget (800 reviews, 1 epoch = 50 steps at max length 512) neither pipeline has
converged: the batch order alone (length grouping off, same seed) moved distiltune by 4 points, and on seed 43
distiltune's run was still at chance after 50 steps (0.505, naive 0.609), see
``results/accuracy_equivalence_1epoch800_2026-11-23_vm.json``.

Both models are scored the same way: fp32, through distiltune's length-sorted, dynamically padded prediction (the
logits equal padding to max length up to float rounding; ``tests/test_speed.py`` checks that), so the held-out set
can be large without hours of padded naive inference.

Run from the repository root::

    .venv/bin/python benchmarks/accuracy_equivalence.py                       # the pre-registered seeds 100-115
    .venv/bin/python benchmarks/accuracy_equivalence.py --seeds 116-119       # a range, or a list: 116,117
    # more seeds into an existing result (its settings are reused and must match; measured seeds are skipped)
    .venv/bin/python benchmarks/accuracy_equivalence.py --append results/accuracy_equivalence_X.json --seeds 46,47
    # merge result files measured with the same settings (no training)
    .venv/bin/python benchmarks/accuracy_equivalence.py --combine A.json B.json
    # a distiltune setting's effect, reusing the naive and peer runs of an earlier result (neither reads --set)
    .venv/bin/python benchmarks/accuracy_equivalence.py --set train.fast_attention=false --seeds 100-103 \
        --baselines-from results/accuracy_equivalence_X.json

Writes ``benchmarks/results/accuracy_equivalence_<date>_<host>.json`` (or the ``--append`` file) after every seed
and prints a table.
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

from results_file import load_result_file, refuse_unpoolable  # noqa: E402  (a sibling script, not a package)
from throughput import (  # noqa: E402
    DEFAULT_DATA,
    LABEL_NAMES,
    REPO_ROOT,
    hardware_summary,
    load_rows,
    run_distiltune,
    train_naive,
    train_peer,
    write_data_folder,
)

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
#: Seeds never used by any result in benchmarks/results/ when this default was set (those used 1 and 42-57).
DEFAULT_SEEDS = "100-115"
#: The pre-registered test, in words (printed and saved with the plan); summarize() computes it.
TEST_DESCRIPTION = (
    "paired per-seed difference in held-out accuracy (distiltune - baseline, points); two one-sided t-tests "
    "(TOST): equivalent within +-margin at the 5% level when the 90% t interval lies inside +-margin; one-sided "
    "non-inferiority t-test (H0: difference <= -margin) at the 5% level; the 95% t interval is reported too"
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Folder with train.jsonl and test.jsonl.")
    parser.add_argument("--model", default="minilm", help="'minilm' (packaged) or a local model directory.")
    parser.add_argument(
        "--seeds",
        default=DEFAULT_SEEDS,
        help="Seeds, comma-separated and/or ranges (100-115); each is one paired run. Default: %(default)s, "
        "pre-registered, fresh (no earlier result used them).",
    )
    parser.add_argument("--train-samples", type=int, default=1000, help="Training reviews per seed (same for both).")
    parser.add_argument("--eval-samples", type=int, default=1000, help="Held-out reviews (one fixed set).")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Change a distiltune setting (e.g. train.group_by_length=false) to measure its effect; repeatable.",
    )
    parser.add_argument("--margin", type=float, default=0.5, help="Equivalence margin in accuracy points.")
    parser.add_argument(
        "--append", type=Path, help="Add the seeds to this result file (same settings; measured seeds are skipped)."
    )
    parser.add_argument(
        "--combine", type=Path, nargs="+", help="Merge these result files (same settings) without training."
    )
    parser.add_argument(
        "--baselines-from",
        "--naive-from",
        dest="naive_from",
        type=Path,
        metavar="FILE",
        help="Take each seed's naive accuracy, and the peer's where the file has it, from this result file instead "
        "of training them again (its data and training settings must match; --set may differ, since neither "
        "baseline reads it).",
    )
    parser.add_argument("--skip-peer", action="store_true", help="Leave the strong peer out (naive vs distiltune).")
    args = parser.parse_args()
    args.eval_batch_size = None  # run_distiltune reads it: distiltune's own inference batching
    return args


def accuracy(model: Any, tokenizer: Any, test: Any, max_length: int) -> float:
    from distiltune.inference.batched import InferenceSettings, predict_logits

    settings = InferenceSettings(max_length=max_length, batch_size=16)
    logits = predict_logits(model, tokenizer, test["text"].tolist(), None, settings)
    return float((logits.argmax(-1) == test["label"].to_numpy()).mean())


def parse_seeds(text: str) -> list[int]:
    """``"100-103,110"`` -> [100, 101, 102, 103, 110]; a seed may appear once."""
    seeds: list[int] = []
    for part in (part.strip() for part in text.split(",")):
        low, dash, high = part.partition("-")
        try:
            seeds += list(range(int(low), int(high) + 1)) if dash else [int(part)]
        except ValueError:
            raise SystemExit(f"--seeds: '{part}' is not a seed or a range LOW-HIGH") from None
    if len(set(seeds)) != len(seeds) or not seeds:
        raise SystemExit(f"--seeds {text}: give each seed once")
    return seeds


def recorded_seeds(folders: list[Path]) -> dict[str, set[int]]:
    """The seeds each JSON result file in ``folders`` mentions (any ``seed`` or ``seeds`` field, at any depth)."""
    found: dict[str, set[int]] = {}

    def walk(node: Any, seeds: set[int]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "seed" and isinstance(value, int):
                    seeds.add(value)
                elif key == "seeds" and isinstance(value, str):
                    seeds.update(int(part) for part in value.split(",") if part.strip().isdigit())
                elif key == "seeds" and isinstance(value, list):
                    seeds.update(seed for seed in value if isinstance(seed, int))
                walk(value, seeds)
        elif isinstance(node, list):
            for item in node:
                walk(item, seeds)

    paths = {path.resolve() for folder in folders if folder.is_dir() for path in folder.glob("*.json")}
    for path in sorted(paths):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        seeds: set[int] = set()
        walk(document, seeds)
        if seeds:
            found[str(path)] = seeds
    return found


def make_plan(args: argparse.Namespace, seeds: list[int], results_dirs: list[Path]) -> dict[str, Any]:
    """The analysis fixed before any training: comparisons, test, margin, seeds (and which of them earlier results
    in ``results_dirs`` already used), settings."""
    reused = {
        name: sorted(used & set(seeds)) for name, used in recorded_seeds(results_dirs).items() if used & set(seeds)
    }
    baselines = ["naive"] if args.skip_peer else ["naive", "peer"]
    return {
        "decided": time.strftime("%Y-%m-%d %H:%M:%S"),
        "comparisons": [f"distiltune - {name}" for name in baselines],
        "test": TEST_DESCRIPTION,
        "alpha": 0.05,
        "margin_points": args.margin,
        "seeds": seeds,
        "seeds_already_in_results": reused,
        "settings": {key: getattr(args, key) for key in COMPARABLE_SETTINGS},
    }


def print_plan(plan: dict[str, Any], results_dirs: list[Path]) -> None:
    seeds = plan["seeds"]
    print("Pre-registered plan (fixed before any training; saved in the results file under 'plan'):")
    print(f"  comparisons: {', '.join(plan['comparisons'])}")
    print(f"  test: {plan['test']}")
    print(f"  margin: {plan['margin_points']} points, alpha {plan['alpha']}")
    print(f"  seeds ({len(seeds)}): {', '.join(map(str, seeds))}")
    already = plan["seeds_already_in_results"]
    if already:
        used = sorted(set().union(*map(set, already.values())))
        names = [Path(name).name for name in already]
        listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        print(f"  NOT FRESH: seed(s) {', '.join(map(str, used))} already used by {listed}")
    else:
        print(f"  none of these seeds appears in {' or '.join(map(str, results_dirs))}")
    print(f"  settings: {json.dumps(plan['settings'])}", flush=True)


#: Settings that must agree before result files may be merged: they define what one seed measures.
COMPARABLE_SETTINGS = ("model", "train_samples", "eval_samples", "epochs", "max_length", "batch_size", "lr", "set")
#: The subset that defines a naive run (``--set`` changes distiltune only).
NAIVE_SETTINGS = tuple(key for key in COMPARABLE_SETTINGS if key != "set")


def summarize(differences: list[float], margin: float = 0.5) -> dict[str, Any]:
    """Mean, standard error, two-sided 90% and 95% t intervals of the per-seed differences (points), the TOST
    verdict (equivalent within ±margin at the 5% level when the 90% interval lies inside (-margin, +margin)) and the
    non-inferiority verdict (no worse than -margin at the 5% level, one-sided: the 90% interval's low end above
    -margin). The second is the question "does the speed cost accuracy?"; the first also bounds a gain."""
    from scipy import stats

    mean = statistics.fmean(differences)
    summary: dict[str, Any] = {"n": len(differences), "mean": round(mean, 2), "margin": margin}
    if len(differences) < 2:
        return summary | {
            "sd": None,
            "se": None,
            "ci95_low": None,
            "ci95_high": None,
            "equivalent": None,
            "non_inferior": None,
        }
    sd = statistics.stdev(differences)
    se = sd / len(differences) ** 0.5
    degrees = len(differences) - 1
    for level, quantile in (("ci90", 0.95), ("ci95", 0.975)):
        half_width = float(stats.t.ppf(quantile, degrees)) * se
        summary[f"{level}_low"] = round(mean - half_width, 2)
        summary[f"{level}_high"] = round(mean + half_width, 2)
    inferiority_p = float(stats.t.sf((mean + margin) / se, degrees))  # H0: difference <= -margin
    superiority_p = float(stats.t.cdf((mean - margin) / se, degrees))  # H0: difference >= +margin
    tost_p = max(inferiority_p, superiority_p)  # both one-sided tests must reject
    return summary | {
        "sd": round(sd, 2),
        "se": round(se, 2),
        "tost_p": round(tost_p, 4),
        "equivalent": tost_p < 0.05,
        "non_inferiority_p": round(inferiority_p, 4),
        "non_inferior": inferiority_p < 0.05,
    }


def check_comparable(
    settings: dict[str, Any], other: dict[str, Any], source: Path, keys: tuple[str, ...] = COMPARABLE_SETTINGS
) -> None:
    """Refuse to pool seeds that measured different things; files from before ``--set`` recorded none."""
    refuse_unpoolable(settings, other, source, keys, missing={"set": []})


def load_results(path: Path) -> dict[str, Any]:
    return load_result_file(path, "accuracy_equivalence")


def reusable_naive_runs(path: Path, settings: dict[str, Any], seeds: list[int]) -> dict[int, dict[str, Any]]:
    """The naive side of ``seeds`` from an earlier result measured on the same data with the same training."""
    reference = load_results(path)
    check_comparable(settings, reference["args"], path, NAIVE_SETTINGS)
    rows = {row["seed"]: row for row in reference["runs"]}
    missing = [seed for seed in seeds if seed not in rows]
    if missing:
        raise SystemExit(f"{path} has no naive run for seed(s) {', '.join(map(str, missing))}; drop them or train.")
    return {seed: rows[seed] for seed in seeds}


def combine(paths: list[Path]) -> dict[str, Any]:
    """One result from several files measured with the same settings; a seed may appear only once."""
    merged = load_results(paths[0])
    merged["merged_from"] = [str(path) for path in paths]
    seen = {row["seed"] for row in merged["runs"]}
    for path in paths[1:]:
        other = load_results(path)
        check_comparable(merged["args"], other["args"], path)
        for row in other["runs"]:
            if row["seed"] in seen:
                raise SystemExit(f"Seed {row['seed']} appears in more than one file ({path}); drop one of them.")
            seen.add(row["seed"])
            merged["runs"].append(row)
    merged["runs"].sort(key=lambda row: row["seed"])
    return merged


def main() -> None:
    args = parse_args()
    if args.combine:
        results = combine(args.combine)
        target = args.output_dir / f"accuracy_equivalence_{time.strftime('%Y-%m-%d')}_{socket.gethostname()}.json"
        write_results(results, target, args.margin)
        print_table(results)
        print(f"Results written to {target}")
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers

    import distiltune

    transformers.logging.set_verbosity_error()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    seeds = parse_seeds(args.seeds)
    if args.set:  # a typo should fail now, not after the first naive training
        from distiltune.config import load_config
        from distiltune.errors import DistiltuneError

        try:
            load_config(None, args.set)
        except DistiltuneError as err:
            raise SystemExit(f"--set: {err}") from err
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    naive_runs = reusable_naive_runs(args.naive_from, settings, seeds) if args.naive_from else {}
    # Fresh seeds means fresh to the repository's results, and to --output-dir when that is elsewhere.
    results_dirs = list(dict.fromkeys([RESULTS_DIR, args.output_dir]))
    if args.append is not None:
        results = load_results(args.append)
        check_comparable(settings, results["args"], args.append)
        measured = {row["seed"] for row in results["runs"]}
        skipped = [seed for seed in seeds if seed in measured]
        if skipped:
            print(f"Already measured in {args.append}, skipped: seeds {', '.join(map(str, skipped))}", flush=True)
        seeds = [seed for seed in seeds if seed not in measured]
        plan = make_plan(args, seeds, results_dirs)
        if seeds:
            results.setdefault("appended", []).append(
                {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "seeds": seeds, "plan": plan}
            )
        target = args.append
    else:
        plan = make_plan(args, seeds, results_dirs)
        results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "args": settings, "plan": plan, "runs": []}
        target = args.output_dir / f"accuracy_equivalence_{time.strftime('%Y-%m-%d')}_{socket.gethostname()}.json"
    print_plan(plan, results_dirs)
    results.setdefault("hardware", hardware_summary(device))
    _, test = load_rows(args.data, 1, args.eval_samples, 0)  # one held-out set for every seed
    for seed in seeds:
        args.seed = seed
        train, _ = load_rows(args.data, args.train_samples, 1, seed)
        with tempfile.TemporaryDirectory(prefix="distiltune-accuracy-") as work_name:
            work = Path(work_name)
            data_dir = write_data_folder(train, test, work)
            reused = naive_runs.get(seed, {})
            if reused:
                naive_accuracy = reused["naive_accuracy"]
                naive = {"train_seconds": reused.get("naive_train_seconds")}
            else:
                print(f"seed {seed}: naive training ...", flush=True)
                model, tokenizer, naive = train_naive(args, train, work, device)
                naive_accuracy = accuracy(model, tokenizer, test, args.max_length)
                del model
            peer_row: dict[str, Any] = {}
            if args.skip_peer:
                pass
            elif "peer_accuracy" in reused:
                peer_row = {key: reused.get(key) for key in ("peer_accuracy", "peer_train_seconds", "peer_precision")}
            else:
                print(f"seed {seed}: peer training ...", flush=True)
                # Scored like the others (fp32, length-sorted, in input order); Trainer.predict would return the
                # predictions length-grouped, since group_by_length also sets the evaluation sampler.
                model, tokenizer, peer = train_peer(args, train, work, device)
                peer_row = {
                    "peer_accuracy": accuracy(model, tokenizer, test, args.max_length),
                    "peer_train_seconds": peer["train_seconds"],
                    "peer_precision": peer["precision"],
                }
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
        if peer_row:
            row.update(peer_row)
            row["difference_vs_peer_points"] = round(100 * (ours_accuracy - peer_row["peer_accuracy"]), 2)
        if seed in naive_runs:
            row["naive_from"] = str(args.naive_from)
        results["runs"].append(row)
        print(json.dumps(row), flush=True)
        write_results(results, target, args.margin)  # after every seed, so an interrupted run keeps what it measured
    print_table(results)
    print(f"Results written to {target}")


def write_results(results: dict[str, Any], target: Path, margin: float) -> None:
    runs = results["runs"]
    results["args"]["seeds"] = ",".join(str(row["seed"]) for row in runs)  # what the file holds, not what was asked
    results["difference_points"] = summarize([row["difference_points"] for row in runs], margin)
    results["naive_mean_accuracy"] = round(statistics.fmean(row["naive_accuracy"] for row in runs), 4)
    results["distiltune_mean_accuracy"] = round(statistics.fmean(row["distiltune_accuracy"] for row in runs), 4)
    # The peer's comparison covers the seeds that trained it (files from before the peer, or --skip-peer, have none).
    with_peer = [row for row in runs if "peer_accuracy" in row]
    if with_peer:
        results["difference_vs_peer_points"] = summarize(
            [row["difference_vs_peer_points"] for row in with_peer], margin
        )
        results["peer_mean_accuracy"] = round(statistics.fmean(row["peer_accuracy"] for row in with_peer), 4)
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
    has_peer = "difference_vs_peer_points" in results
    columns = ["seed", "naive", *(["peer"] if has_peer else []), "distiltune", "vs naive (points)"]
    for column in columns + (["vs peer (points)"] if has_peer else []):
        table.add_column(column, justify="right")
    for row in results["runs"]:
        peer_cells = []
        if has_peer:
            peer_cells = [_cell(row.get("peer_accuracy"), "{:.4f}"), _cell(row.get("difference_vs_peer_points"))]
        table.add_row(
            str(row["seed"]),
            f"{row['naive_accuracy']:.4f}",
            *peer_cells[:1],
            f"{row['distiltune_accuracy']:.4f}",
            f"{row['difference_points']:+.2f}",
            *peer_cells[1:],
        )
    summary = results["difference_points"]
    captions = [verdict(summary, "naive")]
    peer_cells = []
    if has_peer:
        peer_summary = results["difference_vs_peer_points"]
        captions.append(verdict(peer_summary, "the peer"))
        peer_cells = [f"{results['peer_mean_accuracy']:.4f}", f"{peer_summary['mean']:+.2f}{_interval(peer_summary)}"]
    table.caption = " ".join(caption for caption in captions if caption)
    table.add_row(
        "mean",
        f"{results['naive_mean_accuracy']:.4f}",
        *peer_cells[:1],
        f"{results['distiltune_mean_accuracy']:.4f}",
        f"{summary['mean']:+.2f}{_interval(summary)}",
        *peer_cells[1:],
    )
    Console().print(table)


def verdict(summary: dict[str, Any], baseline: str) -> str:
    """The pre-registered tests' outcome for one comparison, in a sentence ('' with fewer than two seeds)."""
    if summary.get("equivalent") is None:
        return ""
    within = "within" if summary["equivalent"] else "not shown within"
    text = (
        f"Against {baseline}, {summary['n']} seeds: equivalence (TOST, 5%) {within} ±{summary['margin']} points; "
        f"90% CI {summary['ci90_low']:+.2f} .. {summary['ci90_high']:+.2f}, p = {summary['tost_p']:.3f}."
    )
    if summary.get("non_inferior") is not None:
        worse = "shown" if summary["non_inferior"] else "not shown"
        text += (
            f" No worse than -{summary['margin']} points (one-sided, 5%): {worse}, "
            f"p = {summary['non_inferiority_p']:.3f}."
        )
    return text


def _interval(summary: dict[str, Any]) -> str:
    if summary["se"] is None:
        return ""
    return f" (SE {summary['se']:.2f}, 95% CI {summary['ci95_low']:+.2f} .. {summary['ci95_high']:+.2f})"


def _cell(value: float | None, template: str = "{:+.2f}") -> str:
    return "-" if value is None else template.format(value)


if __name__ == "__main__":
    main()
