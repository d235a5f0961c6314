"""Batch collation time: transformers' DataCollatorWithPadding vs distiltune's PaddingCollator, on IMDb rows.

The training loop collates every batch on the CPU while the accelerator runs the previous step; a collator
slower than the step starves the GPU (or needs worker processes). Both collators get the same tokenized rows
(as the Trainer's data loader hands them over) and must return equal tensors; the script checks that, then
reports milliseconds per batch, best of ``--repeats``, and writes them to
benchmarks/results/collate_speed_<date>_<host>.json.

    .venv/bin/python benchmarks/collate_speed.py
    .venv/bin/python benchmarks/collate_speed.py --lengths 128 512 --batch-sizes 32 256 768
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "imdb"
RESULTS = REPO_ROOT / "benchmarks" / "results"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import save_results  # noqa: E402  (a sibling script, not a package)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Folder with train.jsonl (IMDb).")
    parser.add_argument("--tokenizer", default="minilm", help="'minilm' (packaged) or a tokenizer directory.")
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256, 768])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output-dir", type=Path, default=RESULTS, help="Where the results file goes.")
    args = parser.parse_args()

    import pandas as pd
    from rich.console import Console
    from rich.table import Table
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from distiltune.data.collate import PaddingCollator
    from distiltune.data.tokenize import tokenize_frame
    from distiltune.modeling import resolve_model_name

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name(args.tokenizer))
    frame = pd.read_json(args.data / "train.jsonl", lines=True).head(max(args.batch_sizes))[["text", "label"]]
    table = Table(title=f"Collating IMDb rows ({torch.get_num_threads()} torch threads), ms per batch")
    for column in ("max length", "rows", "DataCollatorWithPadding", "PaddingCollator", "speed-up"):
        table.add_column(column, justify="right")
    measured: list[dict[str, Any]] = []
    for max_length in args.lengths:
        dataset = tokenize_frame(frame, tokenizer, max_length).remove_columns(["length"])
        for batch_size in args.batch_sizes:
            rows = dataset.__getitems__(list(range(batch_size)))  # what the data loader's fetcher returns
            theirs = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)
            ours = PaddingCollator.for_tokenizer(tokenizer, pad_to_multiple_of=8)
            expected, got = theirs(rows), ours(rows)
            assert all(torch.equal(expected[key], got[key]) for key in expected) and set(expected) == set(got)
            times = {name: best_ms(collate, rows, args.repeats) for name, collate in (("hf", theirs), ("ours", ours))}
            measured.append(
                {
                    "max_length": max_length,
                    "rows": batch_size,
                    "data_collator_with_padding_ms": round(times["hf"], 2),
                    "padding_collator_ms": round(times["ours"], 2),
                    "speedup": round(times["hf"] / times["ours"], 2),
                }
            )
            table.add_row(
                str(max_length),
                str(batch_size),
                f"{times['hf']:.1f}",
                f"{times['ours']:.1f}",
                f"{times['hf'] / times['ours']:.1f}x",
            )
    Console().print(table)
    save_results("collate_speed", args.output_dir, args, measured)


def best_ms(collate, rows, repeats: int) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        collate(rows)
        best = min(best, time.perf_counter() - started)
    return 1000 * best


if __name__ == "__main__":
    main()
