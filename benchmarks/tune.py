"""Does a short hyperparameter search beat the defaults? MiniLM on 2,000 IMDb reviews, held-out accuracy.

1. Data, cut from ../shared/data/imdb (its files are already shuffled): the first --train-size reviews of
   train.jsonl to train on, the next --validation-size as the validation split (what the search optimises and
   every run picks its best checkpoint on), and --eval-size reviews of test.jsonl: the held-out split reported.
2. Search: ``distiltune.tune`` over the method's default space (or --space), --trials trials, TPE sampler seeded
   with --sampler-seed, the median pruner, objective: validation accuracy. Trials train with seed --search-seed.
3. Evaluation: the default configuration (distiltune's defaults for the method: 3 epochs, batch 16, the method's
   lr, ...) and best.yaml, each trained once per seed of --seeds (seeds the search did not use) and scored on the
   held-out reviews. Reported: accuracy of each, and the paired difference per seed with its 95% t-interval.
4. Verdict, fixed before the data: best.yaml beats the default only if the 95% t-interval of the paired difference
   lies above 0; the default beats best.yaml only if it lies below 0; otherwise no difference is shown at 3 seeds.

Max length 128 (reviews cut to their first 128 tokens, the library's default long-text mode): at 256 the 12 trials
and 6 comparison runs take about 4 h on 2 CPU cores, more than one working session; 128 trains about 1.5x faster.

The full benchmark (minutes on a GPU; hours on 2 CPU cores):

    .venv/bin/python benchmarks/tune.py

A smoke run (a minute or two on CPU; /tmp/space.yaml holding ``train.lr: {type: float, low: 1.0e-5, high: 1.0e-3,
log: true}``): ``--train-size 16 --validation-size 8 --eval-size 8 --trials 2 --seeds 1,2 --max-length 16
--space /tmp/space.yaml --set train.epochs=1``.
Prints a table and writes benchmarks/results/tune_<date>_<host>.json after each stage (search, every seed), so an
interrupted benchmark keeps what it measured.

In pieces (hours on CPU): give a --work-dir, an --output and a --timeout; the run stops starting trials and seeds once
the timeout has passed, and the same command run again continues the Optuna study (its SQLite file in the work dir)
and skips the seeds the output file already holds:

    .venv/bin/python benchmarks/tune.py --work-dir /tmp/bench/tune --output benchmarks/results/tune_X.json --timeout 2h
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
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="Folder holding imdb/ (train.jsonl, test.jsonl)."
    )
    parser.add_argument("--model", default="minilm", help="Encoder (default: the packaged offline MiniLM).")
    parser.add_argument("--method", default="full", help="Tuning method searched and compared.")
    parser.add_argument("--train-size", type=int, default=2000, help="IMDb training reviews.")
    parser.add_argument("--validation-size", type=int, default=500, help="Validation reviews (search objective).")
    parser.add_argument("--eval-size", type=int, default=2000, help="Held-out test reviews reported.")
    parser.add_argument("--max-length", type=int, default=128, help="Max tokens per review.")
    parser.add_argument("--trials", type=int, default=12, help="Completed or pruned trials of the search.")
    parser.add_argument("--seeds", default="1,2,3", help="Training seeds of the default vs best.yaml comparison.")
    parser.add_argument("--search-seed", type=int, default=42, help="Training seed of every trial.")
    parser.add_argument("--sampler-seed", type=int, default=0, help="TPE sampler seed (reproducible proposals).")
    parser.add_argument("--pruner", default="median", help="median, hyperband or none.")
    parser.add_argument("--space", type=Path, default=None, help="YAML search space (default: the method's).")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="Extra config override K=V.")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="Runs and the tune folder (default: a temp dir; name one to resume).",
    )
    parser.add_argument(
        "--timeout", default=None, help="Start no new trial or run after this long ('90m', '2h'); rerun to continue."
    )
    parser.add_argument("--output", type=Path, default=None, help="Results JSON path.")
    return parser.parse_args(argv)


def prepare_imdb(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """train / validation / test JSONL files cut from the shared IMDb copy; the config keys that read them."""
    source = args.data / "imdb"
    if not (source / "train.jsonl").is_file():
        raise SystemExit(f"No IMDb data at {source}: pass --data (see ../shared/data/README.md).")
    train_rows = pd.read_json(source / "train.jsonl", lines=True)
    test_rows = pd.read_json(source / "test.jsonl", lines=True)
    end = args.train_size + args.validation_size
    if end > len(train_rows) or args.eval_size > len(test_rows):
        raise SystemExit(
            f"--train-size + --validation-size must be <= {len(train_rows)}, --eval-size <= {len(test_rows)}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    columns = ["text", "label"]
    train_rows.iloc[: args.train_size][columns].to_json(folder / "train.jsonl", orient="records", lines=True)
    train_rows.iloc[args.train_size : end][columns].to_json(folder / "validation.jsonl", orient="records", lines=True)
    test_rows.iloc[: args.eval_size][columns].to_json(folder / "test.jsonl", orient="records", lines=True)
    return {"data.dataset": str(folder), "data.label_names": ["neg", "pos"], "data.max_length": args.max_length}


def base_overrides(args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    """The default configuration: distiltune's defaults for the method on this data, selected on accuracy."""
    overrides: dict[str, Any] = {
        **data,
        "model.name": args.model,
        "method.name": args.method,
        "train.metric": "accuracy",
        "train.seed": args.search_seed,
    }
    for item in args.overrides:
        key, _, value = item.partition("=")
        overrides[key.strip()] = value
    return overrides


def scores(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "test_accuracy": metrics["test"]["accuracy"],
        "test_f1_macro": metrics["test"]["f1_macro"],
        "validation_accuracy": metrics["validation"]["accuracy"],
        "train_seconds": metrics.get("train_seconds"),
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sd of each arm's held-out accuracy, and the paired difference best - default in accuracy points
    (mean, sd, 95% t-interval when there are two seeds or more)."""
    complete = [row for row in rows if row.get("default") and row.get("best")]
    out: dict[str, Any] = {"seeds": len(complete)}
    for arm in ("default", "best"):
        values = [row[arm]["test_accuracy"] for row in complete]
        out[f"{arm}_accuracy_mean"] = statistics.fmean(values) if values else None
        out[f"{arm}_accuracy_sd"] = statistics.stdev(values) if len(values) > 1 else None
    differences = [100 * (row["best"]["test_accuracy"] - row["default"]["test_accuracy"]) for row in complete]
    out["difference_points"] = differences
    out["difference_mean_points"] = statistics.fmean(differences) if differences else None
    if len(differences) > 1:
        from scipy import stats

        sd = statistics.stdev(differences)
        half = stats.t.ppf(0.975, len(differences) - 1) * sd / len(differences) ** 0.5
        mean = out["difference_mean_points"]
        out.update({"difference_sd_points": sd, "difference_ci95_points": [mean - half, mean + half]})
    return out


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import optuna
    import transformers

    import distiltune
    from distiltune.errors import ConfigError
    from distiltune.tuning.search import parse_duration

    try:
        timeout = parse_duration(args.timeout)  # once, before any data is cut: a typo fails in a second, not hours
    except ConfigError as err:
        raise SystemExit(str(err)) from None
    transformers.logging.set_verbosity_error()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="distiltune-tune-"))
    output = (
        args.output or REPO / "benchmarks" / "results" / f"tune_{time.strftime('%Y-%m-%d')}_{platform.node()}.json"
    )
    base = base_overrides(args, prepare_imdb(args, work / "data"))
    result: dict[str, Any] = {"settings": settings_of(args), "environment": _environment(), "base_config": base}

    previous = resumable_runs(output, result["settings"])
    started = time.perf_counter()
    deadline = None if timeout is None else started + timeout
    search = distiltune.tune(
        None,
        {**base, "run.output_dir": str(work / "runs")},
        trials=args.trials,
        space=args.space,
        study=f"benchmark_{args.method}",
        pruner=args.pruner,
        output_dir=work / "tune",
        sampler_seed=args.sampler_seed,
        timeout=timeout,
    )
    if search.best_config is None:
        raise SystemExit(f"No trial completed; see {search.dir / 'tune.log'}")
    counted = search.counts.get("complete", 0) + search.counts.get("pruned", 0)
    result["search"] = {
        "finished": counted >= args.trials,
        "seconds": round(time.perf_counter() - started, 1),
        "dir": str(search.dir),
        "counts": search.counts,
        "best_trial": search.best_trial,
        "best_validation_accuracy": search.best_value,
        "best_params": search.best_params,
        "importances": search.importances,
        "trials": [
            {key: row[key] for key in ("number", "state", "value", "params", "duration_s", "pruned_at")}
            for row in search.trials
        ],
    }
    print(f"Search: best trial {search.best_trial}, validation accuracy {search.best_value:.4f}", file=sys.stderr)
    rows: list[dict[str, Any]] = [previous[seed] for seed in seeds if seed in previous]
    result["runs"] = rows
    if rows:
        result["summary"] = summarize(rows)
    write_results(output, result)
    if not result["search"]["finished"]:
        raise SystemExit(f"The search has {counted} of {args.trials} trials; {RESUME_HINT} Wrote {output}")
    for seed in seeds:
        if seed in previous:
            print(f"seed {seed}: measured before, kept from {output}", file=sys.stderr)
            continue
        if deadline is not None and time.perf_counter() > deadline:
            raise SystemExit(f"--timeout reached before seed {seed}; {RESUME_HINT} Wrote {output}")
        row: dict[str, Any] = {"seed": seed}
        rows.append(row)
        default = distiltune.train(None, {**base, "train.seed": seed, "run.output_dir": str(work / "default")})
        row["default"] = scores(default.metrics)
        best = distiltune.train(search.best_config, {"train.seed": seed, "run.output_dir": str(work / "best")})
        row["best"] = scores(best.metrics)
        result["summary"] = summarize(rows)
        write_results(output, result)
        default_accuracy, best_accuracy = row["default"]["test_accuracy"], row["best"]["test_accuracy"]
        print(f"seed {seed}: default {default_accuracy:.4f}, best.yaml {best_accuracy:.4f}", file=sys.stderr)
    print_summary(result)
    print(f"Wrote {output}")


def print_summary(result: dict[str, Any]) -> None:
    summary, search = result["summary"], result["search"]
    counts = search["counts"]
    print(
        f"search: {counts['complete']} completed, {counts['pruned']} pruned, {counts['fail']} failed in "
        f"{search['seconds']:.0f} s; best trial {search['best_trial']} (validation accuracy "
        f"{search['best_validation_accuracy']:.4f}): {search['best_params']}"
    )
    for arm in ("default", "best"):
        sd = summary[f"{arm}_accuracy_sd"]
        spread = f" ± {sd:.4f}" if sd is not None else ""
        mean = summary[f"{arm}_accuracy_mean"]
        print(f"{arm:8} held-out accuracy {mean:.4f}{spread} over {summary['seeds']} seed(s)")
    interval = summary.get("difference_ci95_points")
    extra = f" (95% CI {interval[0]:+.2f} to {interval[1]:+.2f})" if interval else ""
    print(f"best.yaml - default: {summary['difference_mean_points']:+.2f} accuracy points{extra}")


RESUME_HINT = "run the same command again (same --work-dir and --output) to continue."
#: Settings that may change between the sessions of one resumed benchmark.
RESUME_FREE_SETTINGS = frozenset({"timeout", "work_dir", "output", "data"})


def resumable_runs(output: Path, settings: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The seeds a previous, interrupted run of the same benchmark measured in ``output`` with both arms."""
    if not output.is_file():
        return {}
    before = json.loads(output.read_text(encoding="utf-8"))
    differing = sorted(
        key
        for key in set(settings) | set(before.get("settings", {}))
        if key not in RESUME_FREE_SETTINGS and settings.get(key) != before.get("settings", {}).get(key)
    )
    if differing:
        raise SystemExit(
            f"{output} holds a run with other settings ({', '.join(differing)}): pass another --output, or the "
            "same settings to continue it."
        )
    return {row["seed"]: row for row in before.get("runs", []) if row.get("default") and row.get("best")}


def write_results(output: Path, result: dict[str, Any]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    return {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}


def _environment() -> dict[str, Any]:
    """The machine, as the other training benchmarks record it (CPU model and flags: a figure holds for its CPU)."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from throughput import hardware_summary  # a sibling script, not a package

    return hardware_summary("cuda" if torch.cuda.is_available() else "cpu")


if __name__ == "__main__":
    main()
