"""The quick check behind the prompt/prefix default learning rates and prompt initialisation (docs/methods.md).

MiniLM (offline) on SST-2 sentences from ../shared/data/sst2: 2,000 training rows, 300 validation rows from the
rest of train, 800 rows of the labelled test set; max length 64, 2 epochs, batch 16, seed 42. Cheap on purpose
(short sentences): about 30 s a run on a quiet 2-core CPU.

    .venv/bin/python benchmarks/soft_prompt_defaults.py              # every variant
    .venv/bin/python benchmarks/soft_prompt_defaults.py "prefix lr1e-2" full

Appends one JSON line per run to benchmarks/results/soft_prompt_defaults_<date>.jsonl.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SST2 = REPO.parent / "shared" / "data" / "sst2"
VARIANTS: dict[str, dict[str, object]] = {
    "full": {"method.name": "full"},
    "lora": {"method.name": "lora"},
    "head": {"method.name": "head"},
    "head+mlp mean": {"method.name": "head", "model.head": "mlp", "model.pooling": "mean"},
    "prompt lr1e-2 text": {"method.name": "prompt"},
    "prompt lr3e-2 text": {"method.name": "prompt", "train.lr": 3e-2},
    "prompt lr1e-2 random": {"method.name": "prompt", "method.init": "random"},
    "prefix lr3e-3": {"method.name": "prefix", "train.lr": 3e-3},
    "prefix lr1e-2": {"method.name": "prefix"},
    "prefix lr3e-2": {"method.name": "prefix", "train.lr": 3e-2},
}


def prepare(folder: Path) -> None:
    # GLUE-style TSV: no quoting.
    train = pd.read_csv(SST2 / "train.tsv", sep="\t", quoting=csv.QUOTE_NONE).sample(frac=1, random_state=0)
    test = pd.read_csv(SST2 / "test.tsv", sep="\t", quoting=csv.QUOTE_NONE)
    train, test = train.rename(columns={"sentence": "text"}), test.rename(columns={"sentence": "text"})
    folder.mkdir(parents=True, exist_ok=True)
    train.iloc[:2000][["text", "label"]].to_json(folder / "train.jsonl", orient="records", lines=True)
    train.iloc[2000:2300][["text", "label"]].to_json(folder / "validation.jsonl", orient="records", lines=True)
    test.sample(n=800, random_state=0)[["text", "label"]].to_json(folder / "test.jsonl", orient="records", lines=True)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    import distiltune

    transformers.logging.set_verbosity_error()
    chosen = sys.argv[1:] or list(VARIANTS)
    unknown = [name for name in chosen if name not in VARIANTS]
    if unknown:
        raise SystemExit(f"Unknown variants {unknown}; choose from {list(VARIANTS)}")
    root = Path(tempfile.mkdtemp(prefix="distiltune-soft-prompts-"))
    prepare(root / "sst2")
    output = REPO / "benchmarks" / "results" / f"soft_prompt_defaults_{time.strftime('%Y-%m-%d')}.jsonl"
    output.parent.mkdir(parents=True, exist_ok=True)
    for name in chosen:
        run = distiltune.train(
            None,
            {
                "data.dataset": str(root / "sst2"),
                "data.label_names": ["negative", "positive"],
                "data.max_length": 64,
                "model.name": "minilm",
                "train.epochs": 2,
                "train.batch_size": 16,
                "run.output_dir": str(root / "runs"),
                **VARIANTS[name],
            },
        )
        test = run.metrics["test"]
        line = {
            "variant": name,
            "lr": run.config.train.lr,
            "accuracy": round(test["accuracy"], 4),
            "f1_macro": round(test["f1_macro"], 4),
            "trainable_params": run.metrics["trainable_params"],
            "train_seconds": run.metrics["train_seconds"],
        }
        print(json.dumps(line), flush=True)
        with output.open("a") as handle:
            handle.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
