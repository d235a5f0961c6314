"""The model alone, without a server: the ceiling on what any server of this run can answer per second here.

``serve_load.py`` measures servers end to end: HTTP, JSON, the load generator on the same cores, batching. This
script removes all of that and times the model calls a server makes, on the same reviews, in one process:

* ``pipeline per text``: ``transformers.pipeline("text-classification")`` called on one review at a time, torch's
  default threads: what the usual server does per request, minus the server;
* ``distiltune torch batch B`` and ``distiltune onnx-int8 batch B``: ``Classifier.predict_proba`` on consecutive
  chunks of B reviews in arrival (random) order, padded to the longest in the chunk, as the dynamic batcher calls
  it under load (``B`` from ``--batch-sizes``; the batcher's token budget of 8,192 allows 32 rows at 256 tokens).

Each variant runs once per round, the variants taking turns and each round starting one variant later (a VM whose
speed drifts slows every variant alike); the reported figure is the median over rounds. The reading, fixed before
the first run: the best distiltune variant's texts/s over ``pipeline per text`` bounds the speed-up that batching
and a faster backend can buy over the usual server on this machine. Where that ratio is below a serving target
(4x at 32 clients, issue 17), no server design reaches the target here without a faster model call.

    .venv/bin/python benchmarks/serve_ceiling.py --run runs/<minilm-imdb-demo-run>

Writes ``benchmarks/results/serve_ceiling_<date>_<host>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import save_results  # noqa: E402  (a sibling script)
from serve_load import ensure_int8_export, review_texts, run_max_length  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="A trained run (the one serve_load.py served).")
    parser.add_argument("--texts", type=int, default=192, help="Reviews per variant and round.")
    parser.add_argument("--pipeline-texts", type=int, default=64, help="Reviews per round for the per-text pipeline.")
    parser.add_argument("--batch-sizes", default="16,32", help="Comma-separated distiltune batch sizes.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42, help="Review order (serve_load.py's default too).")
    parser.add_argument("--export-samples", type=int, default=500, help="Parity-check rows if an export is made.")
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    return parser.parse_args(argv)


def variants(run_dir: Path, texts: list[str], args: argparse.Namespace) -> dict[str, Callable[[], int]]:
    """name -> a callable that makes the model calls of one measurement and returns how many texts it scored."""
    from transformers import pipeline

    import distiltune

    max_length = run_max_length(run_dir)
    usual = pipeline("text-classification", model=str(run_dir / "model"), device=-1)
    per_text = texts[: args.pipeline_texts]

    def pipeline_per_text() -> int:
        for text in per_text:
            usual(text, truncation=True, max_length=max_length, top_k=None)
        return len(per_text)

    found: dict[str, Callable[[], int]] = {"pipeline per text": pipeline_per_text}
    for backend in ("torch", "onnx"):
        classifier = distiltune.load(run_dir, backend=backend)
        classifier.predict_proba(texts[:8])  # warm-up: first-call allocations and graph setup
        label = "onnx-int8" if backend == "onnx" else f"torch {classifier.precision}"
        for size in (int(value) for value in args.batch_sizes.split(",")):

            def batched(classifier: distiltune.Classifier = classifier, size: int = size) -> int:
                for start in range(0, len(texts), size):
                    classifier.predict_proba(texts[start : start + size])
                return len(texts)

            found[f"distiltune {label} batch {size}"] = batched
    usual(texts[0], truncation=True, max_length=max_length, top_k=None)
    return found


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be at least 1, got {args.rounds}.")
    ensure_int8_export(args.run, args.export_samples)
    texts = review_texts(args.seed)[: args.texts]
    measured = variants(args.run, texts, args)
    names = list(measured)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            count = measured[name]()
            rates[name].append(round(count / (time.perf_counter() - started), 2))
            print(f"round {round_index + 1}  {name:<36} {rates[name][-1]:7.2f} texts/s", flush=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    baseline = medians["pipeline per text"]
    best = max((name for name in names if name.startswith("distiltune")), key=medians.__getitem__)
    results = {
        "run": args.run.name,
        "max_length": run_max_length(args.run),
        "texts": "bundled IMDb test reviews (imdb-demo) in serve_load.py's order",
        "texts_per_second_by_round": rates,
        "texts_per_second": medians,
        "vs_pipeline_per_text": {name: round(value / baseline, 2) for name, value in medians.items()},
        "best": best,
        "best_vs_pipeline_per_text": round(medians[best] / baseline, 2),
    }
    print(f"\n{'variant':<38}{'texts/s (median)':>18}{'x pipeline':>12}")
    for name in names:
        print(f"{name:<38}{medians[name]:>18.2f}{medians[name] / baseline:>12.2f}")
    save_results("serve_ceiling", args.output_dir, args, results)


if __name__ == "__main__":
    main()
