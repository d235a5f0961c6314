"""Inference speed of an encoder architecture: the naive notebook predict loop against distiltune's backends.

``throughput.py`` measures everything on a real pretrained model, but the only one offline here is MiniLM-L6
(hidden 384). This script measures inference *speed* for the architectures users actually fine-tune, such as
DistilBERT-base, BERT-base and RoBERTa-base, whose weights the hub would provide. With no hub access it builds the
architecture from its default config with **random weights**. Speed does not depend on the weight values (the
same matmuls, attention and quantization run), so the samples/s and ratios are real. Accuracy and label
agreement of a random model mean nothing, so they are not reported. Pass ``--model DIR`` to use real weights
from a local directory instead.

Every backend predicts the same held-out IMDb reviews at the same max length:

* naive: eager fp32, batches in input order padded to max length (timed at batch 8 and 32; its best counts);
* distiltune torch fp32 and bf16: length-sorted, dynamically padded batches at distiltune's default batch size;
* distiltune ONNX fp32 and int8: ``distiltune export`` (fused graph; int8 dynamic quantization).

Run from the repository root::

    .venv/bin/python benchmarks/inference_speed.py --architecture distilbert-base
    .venv/bin/python benchmarks/inference_speed.py --architecture bert-base --eval-samples 100

Writes ``benchmarks/results/inference_<architecture>_<date>_<host>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import socket
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
    naive_inference_by_batch_size,
    naive_predict,
    record_rounds,
    time_classifier,
)

#: Default configs of these classes are the base models' architectures (distilbert-base-uncased, bert-base-uncased,
#: roberta-base). The vocabulary size is taken from the tokenizer.
ARCHITECTURES = ("distilbert-base", "bert-base", "roberta-base")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", choices=ARCHITECTURES, default="distilbert-base")
    parser.add_argument("--model", type=Path, default=None, help="A local model directory (real weights) instead.")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Folder with train.jsonl and test.jsonl.")
    parser.add_argument("--eval-samples", type=int, default=200, help="Held-out reviews to predict.")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--naive-eval-batch-sizes", default="8,32")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-bf16", action="store_true", help="Leave out the torch bf16 row.")
    parser.add_argument(
        "--inference-rounds",
        type=int,
        default=3,
        help="More timings of every backend after the first pass, taking turns; each row reports its median.",
    )
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    return parser.parse_args()


def build_random_model(architecture: str, directory: Path, tokenizer_source: str = "minilm") -> Path:
    """The architecture with random weights and the uncased WordPiece vocabulary of the packaged MiniLM (the
    same 30,522-token vocabulary as bert-base-uncased and distilbert-base-uncased), or of ``tokenizer_source``."""
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
        DistilBertConfig,
        DistilBertForSequenceClassification,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    from distiltune.modeling import resolve_model_name

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name(tokenizer_source))
    labels = {"id2label": dict(enumerate(LABEL_NAMES)), "label2id": {n: i for i, n in enumerate(LABEL_NAMES)}}
    if architecture == "distilbert-base":
        model = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=len(tokenizer), **labels))
    elif architecture == "bert-base":
        model = BertForSequenceClassification(BertConfig(vocab_size=len(tokenizer), **labels))
    else:
        # RoBERTa's position ids start after the padding index, hence 514 positions for 512 tokens.
        config = RobertaConfig(vocab_size=len(tokenizer), max_position_embeddings=514, pad_token_id=0, **labels)
        model = RobertaForSequenceClassification(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers

    import distiltune
    from distiltune.export import export_run

    transformers.logging.set_verbosity_error()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train, test = load_rows(args.data, 16, args.eval_samples, args.seed)
    name = args.model.name if args.model else args.architecture
    random_weights = args.model is None
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "hardware": hardware_summary(device),
        "args": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
        "model": name,
        "random_weights": random_weights,
        "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="distiltune-inference-") as work_name:
        work = Path(work_name)
        model_dir = args.model or build_random_model(args.architecture, work / "model")
        data_dir = work / "data"
        data_dir.mkdir()
        train.to_json(data_dir / "train.jsonl", orient="records", lines=True)
        train.to_json(data_dir / "validation.jsonl", orient="records", lines=True)
        # One optimizer step makes a run directory (config, model, predictions for the export's parity check).
        run = distiltune.train(
            None,
            {
                "model.name": str(model_dir),
                "data.dataset": str(data_dir),
                "data.text_column": "text",
                "data.label_column": "label",
                "data.label_names": LABEL_NAMES,
                "data.max_length": args.max_length,
                "train.max_steps": 1,
                "train.batch_size": 4,
                "train.seed": args.seed,
                "run.output_dir": str(work / "runs"),
                "run.name": name,
            },
        )
        reference = distiltune.load(run.dir, precision="fp32")
        model, tokenizer = reference.model, reference.tokenizer
        texts = test["text"].tolist()
        naive_predict(model, tokenizer, texts[:8], args, device, 8)  # warm-up
        naive_by_batch, _, _ = naive_inference_by_batch_size(model, tokenizer, texts, args, device)
        for batch_size, samples_per_second in naive_by_batch.items():
            print(f"naive eager fp32, batch {batch_size}: {samples_per_second} samples/s", flush=True)
        best_batch = max(naive_by_batch, key=naive_by_batch.get)
        backends = results["backends"]
        backends["naive eager fp32"] = {
            "samples_per_second": naive_by_batch[best_batch],
            "by_batch_size": naive_by_batch,
        }
        rerun = {"naive eager fp32": lambda: naive_predict(model, tokenizer, texts, args, device, best_batch)}
        backends["distiltune torch fp32"] = time_classifier(reference, test, device, None)
        rerun["distiltune torch fp32"] = functools.partial(reference.predict_proba, texts)
        print(f"torch fp32: {backends['distiltune torch fp32']['samples_per_second']} samples/s", flush=True)
        if not args.skip_bf16:
            bf16 = distiltune.load(run.dir, precision="bf16")
            backends["distiltune torch bf16"] = time_classifier(bf16, test, device, None)
            rerun["distiltune torch bf16"] = functools.partial(bf16.predict_proba, texts)
        for quantize in (None, "int8"):
            label = f"distiltune onnx {quantize or 'fp32'}"
            # force: with random weights the parity check's agreement is meaningless; speed is what is measured.
            exported = export_run(run.dir, quantize=quantize, force=True)
            served = distiltune.load(run.dir, backend="onnx", export_dir=exported.path)
            timed = time_classifier(served, test, "cpu", None)
            timed["fused_operators"] = exported.report["fused_operators"]
            timed["size_mb"] = exported.report["size_mb"]
            backends[label] = timed
            rerun[label] = functools.partial(served.predict_proba, texts)
            print(f"{label}: {timed['samples_per_second']} samples/s", flush=True)
        if args.inference_rounds > 0:
            print(f"{args.inference_rounds} more rounds of every backend, taking turns ...", flush=True)
            record_rounds(backends, rerun, len(texts), args.inference_rounds)
        baseline = backends["naive eager fp32"]["samples_per_second"]
        for row in backends.values():
            row.pop("predicted", None)
            row["speedup_vs_naive"] = round(row["samples_per_second"] / baseline, 2)
            if random_weights:
                row.pop("accuracy", None)

    args.output_dir.mkdir(parents=True, exist_ok=True)
    target = args.output_dir / f"inference_{name}_{time.strftime('%Y-%m-%d')}_{socket.gethostname()}.json"
    target.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print_table(results)
    print(f"Results written to {target}")


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    weights = "random weights: speed only" if results["random_weights"] else "local weights"
    table = Table(title=f"Inference: {results['model']} ({weights}), max length {results['args']['max_length']}")
    for column in ("backend", "samples/s", "vs naive"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for name, row in results["backends"].items():
        table.add_row(name, f"{row['samples_per_second']:.1f}", f"{row['speedup_vs_naive']:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
