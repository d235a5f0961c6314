"""How much padding length grouping saves, per group size: real tokens / padded tokens of a training epoch.

``train.group_by_length`` draws random groups of ``train.length_group_batches`` batches, sorts each group by length
and cuts it into batches (then shuffles the batches). Bigger groups pad less but make every batch a single length
class; this prints the padding side of that trade for the data you pass, using distiltune's own sampler on the
token lengths the tokenizer gives, and writes it to benchmarks/results/length_grouping_<date>_<host>.json. The
accuracy side is measured by ``accuracy_equivalence.py``. No training: it takes seconds.

    .venv/bin/python benchmarks/length_grouping.py
    .venv/bin/python benchmarks/length_grouping.py --max-lengths 128 512 --batch-size 32 --groups 1 4 8 0
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "imdb"
RESULTS = REPO_ROOT / "benchmarks" / "results"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import save_results  # noqa: E402  (a sibling script, not a package)


def padding_efficiency(lengths: list[int], batch_size: int, order: list[int]) -> tuple[float, float]:
    """(real / padded tokens, sum of padded length² per row) of the batches ``order`` cuts into."""
    padded = squared = 0
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        longest = max(lengths[i] for i in batch)
        padded += longest * len(batch)
        squared += longest * longest * len(batch)
    return sum(lengths) / padded, float(squared)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Folder with train.jsonl.")
    parser.add_argument("--tokenizer", default="minilm", help="'minilm' (packaged) or a tokenizer directory.")
    parser.add_argument("--max-lengths", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-samples", type=int, default=1000, help="Rows per seed (each seed draws its own).")
    parser.add_argument("--seeds", default="42,43,44,45,46,47,48,49")
    parser.add_argument("--epochs", type=int, default=2, help="Epoch orders averaged per seed.")
    parser.add_argument(
        "--groups", type=int, nargs="+", default=[1, 2, 4, 8, 0], help="Batches per group; 0: the Trainer's rule."
    )
    parser.add_argument(
        "--output-dir", type=Path, default=RESULTS, help="Where length_grouping_<date>_<host>.json goes."
    )
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import pandas as pd
    import torch
    from rich.console import Console
    from rich.table import Table
    from transformers import AutoTokenizer

    from distiltune.modeling import resolve_model_name
    from distiltune.training.trainer import epoch_seed, length_grouped_indices

    if not (args.data / "train.jsonl").is_file():
        raise SystemExit(f"error: {args.data / 'train.jsonl'} not found; pass --data FOLDER.")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name(args.tokenizer))
    texts = pd.read_json(args.data / "train.jsonl", lines=True)["text"]
    seeds = [int(seed) for seed in args.seeds.split(",")]
    table = Table(title=f"Length grouping, batch {args.batch_size}: real tokens / padded tokens (mean over seeds)")
    table.add_column("max length", justify="right")
    table.add_column("batches per group", justify="right")
    table.add_column("real / padded", justify="right")
    table.add_column("attention work vs random batches", justify="right")
    measured: list[dict[str, Any]] = []
    for max_length in args.max_lengths:
        results: dict[int, list[tuple[float, float]]] = {group: [] for group in args.groups}
        random_batches: list[tuple[float, float]] = []
        for seed in seeds:
            sample = texts.sample(n=min(args.train_samples, len(texts)), random_state=seed).tolist()
            lengths = [len(ids) for ids in tokenizer(sample, truncation=True, max_length=max_length)["input_ids"]]
            for epoch in range(args.epochs):
                shuffled = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed + epoch))
                random_batches.append(padding_efficiency(lengths, args.batch_size, shuffled.tolist()))
                for group in args.groups:
                    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
                    order = length_grouped_indices(lengths, args.batch_size, generator, group or None)
                    results[group].append(padding_efficiency(lengths, args.batch_size, order))
        baseline = np.mean([squared for _, squared in random_batches])
        table.add_row(str(max_length), "random", f"{np.mean([r for r, _ in random_batches]):.3f}", "1.00")
        measured.append(
            {
                "max_length": max_length,
                "batches_per_group": "random",
                "real_over_padded": round(float(np.mean([r for r, _ in random_batches])), 4),
                "attention_work_vs_random": 1.0,
            }
        )
        for group, rows in results.items():
            efficiency = float(np.mean([r for r, _ in rows]))
            attention = float(np.mean([squared for _, squared in rows]) / baseline)
            table.add_row(
                str(max_length), str(group) if group else "Trainer's rule", f"{efficiency:.3f}", f"{attention:.2f}"
            )
            measured.append(
                {
                    "max_length": max_length,
                    "batches_per_group": group or "trainer_rule",
                    "real_over_padded": round(efficiency, 4),
                    "attention_work_vs_random": round(attention, 4),
                }
            )
    Console().print(table)
    save_results("length_grouping", args.output_dir, args, measured)


if __name__ == "__main__":
    main()
