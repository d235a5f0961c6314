"""Training and inference throughput: the naive notebook pipeline, the strong peer and distiltune's defaults, side
by side.

One process, the same IMDb rows, the same model, epochs, batch size and learning rate for all three pipelines:

* **naive**: what the popular notebooks do. ``tokenizer(..., padding="max_length")`` up front, fp32, random
  batches, a default ``Trainer`` (attention dropout on, so SDPA takes its slow path), and eager fp32
  inference in input order, padded to max length.
* **peer**: the ``Trainer`` recipe a knowledgeable user writes today with the same libraries and no distiltune:
  truncation without padding and ``DataCollatorWithPadding`` (to a multiple of 8 on CUDA),
  ``train_sampling_strategy="group_by_length"``, bf16 where the hardware has it (fp16 on older GPUs; decided by
  distiltune's own detection, see :func:`peer_precision`), SDPA attention, ``optim="adamw_torch_fused"``; inference
  through ``transformers.pipeline("text-classification", ...)`` with ``batch_size`` (timed at each of
  ``--peer-eval-batch-sizes``, the fastest counts), weights in the precision it trained in.
* **distiltune**: ``distiltune.train`` with its defaults (dynamic padding, length-grouped batches, bf16 where
  the hardware has it, fused attention, fused AdamW, tokenization cache) and ``distiltune.load(...).predict``
  (length-sorted batches).

Reported per pipeline: training samples/s and real tokens/s (padding excluded), inference samples/s, peak
memory, accuracy on held-out reviews after the same training budget, and distiltune's ratios against both
baselines (``ratios.vs_naive``, ``ratios.vs_peer`` in the JSON). A large matmul, checked before and after training
(the faster check counts), gives the machine's practical fp32 and bf16 peak; training's fraction of that peak
(MFU-style) uses ``6 * non-embedding params * real tokens`` FLOPs. Inference also compares ONNX Runtime fp32 and
int8 exports.

Run from the repository root (the default sizes took about 25 minutes on a quiet 2-core CPU before the peer was
added; the peer adds its training and inference)::

    .venv/bin/python benchmarks/throughput.py
    .venv/bin/python benchmarks/throughput.py --model /path/to/distilbert-base-uncased --max-length 128
    .venv/bin/python benchmarks/throughput.py --train-samples 32 --eval-samples 32 --max-length 128  # smoke

Writes ``benchmarks/results/<date>_<host>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "imdb"
LABEL_NAMES = ["neg", "pos"]
VALIDATION_ROWS = 16


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Folder with train.jsonl and test.jsonl.")
    parser.add_argument("--model", default="minilm", help="'minilm' (packaged) or a local model directory.")
    parser.add_argument("--train-samples", type=int, default=800, help="Training reviews (same for both).")
    parser.add_argument("--eval-samples", type=int, default=500, help="Held-out reviews for accuracy/inference.")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=512, help="Truncation length (naive pads to it).")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--eval-batch-size",
        type=int,
        default=None,
        help="distiltune's inference batch size (default: its own, a padded-token budget on CPU and 64 on GPU).",
    )
    parser.add_argument(
        "--naive-eval-batch-sizes",
        default="8,32",
        help="Naive inference is timed at each of these batch sizes; the fastest is the baseline.",
    )
    parser.add_argument(
        "--peer-eval-batch-sizes",
        default="8,32",
        help="The strong peer's pipeline(..., batch_size=N) is timed at each of these; its fastest counts.",
    )
    parser.add_argument(
        "--inference-rounds",
        type=int,
        default=3,
        help="After the first pass, time every inference backend this many more times, taking turns, and report "
        "each one's median: a VM's speed drifts by 10-30%% over the minutes between backends. 0: first pass only.",
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="Learning rate of both pipelines (default: 2e-4 for the packaged MiniLM, 5e-5 for other models). The "
        "default budget is only 50 steps: at 5e-5 MiniLM's training loss stays near chance in both pipelines, so "
        "their accuracies say nothing; at 2e-4 both learn.",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--matmul-size", type=int, default=None, help="Square matmul size (2048 CPU, 8192 GPU).")
    parser.add_argument("--skip-onnx", action="store_true", help="Leave out the ONNX fp32/int8 rows.")
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if args.lr is None:
        args.lr = 2e-4 if args.model.lower() == "minilm" else 5e-5
    return args


# --- measurement helpers ----------------------------------------------------------------------------


class PeakMemory:
    """Peak memory while the block runs: CUDA allocator peak on GPU, sampled process RSS on CPU."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.peak_bytes = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            import psutil

            process = psutil.Process()
            self.peak_bytes = process.memory_info().rss

            def sample() -> None:
                while not self._stop.wait(0.05):
                    self.peak_bytes = max(self.peak_bytes, process.memory_info().rss)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()

    @property
    def peak_mb(self) -> float:
        return round(self.peak_bytes / 2**20, 1)


def matmul_gflops(device: str, dtype_name: str, size: int, repeats: int = 5) -> float:
    """Best-of-N GFLOP/s of a square matmul: the practical peak the training fraction is measured against."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.matmul(a, b)  # warm-up (allocation, kernel choice)
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        torch.matmul(a, b)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return round(2 * size**3 / best / 1e9, 1)


def non_embedding_parameters(model: Any) -> int:
    """Parameters that take part in matmuls per token (embedding tables are lookups, not FLOPs)."""
    return sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)


def hardware_summary(device: str) -> dict[str, Any]:
    import torch

    from distiltune.hardware import cpu_flags, cpu_has_native_bf16

    cpu_name = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_name = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {
        "host": socket.gethostname(),
        "cpu": cpu_name,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "cpu_amx": "amx_bf16" in cpu_flags(),
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


# --- data ---------------------------------------------------------------------------------------------


def load_rows(data_dir: Path, train_samples: int, eval_samples: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    for name in ("train.jsonl", "test.jsonl"):
        if not (data_dir / name).is_file():
            raise SystemExit(f"error: {data_dir / name} not found; pass --data FOLDER (train.jsonl, test.jsonl).")
    train = pd.read_json(data_dir / "train.jsonl", lines=True)[["text", "label"]]
    test = pd.read_json(data_dir / "test.jsonl", lines=True)[["text", "label"]]
    train = train.sample(n=min(train_samples, len(train)), random_state=seed).reset_index(drop=True)
    test = test.sample(n=min(eval_samples, len(test)), random_state=seed).reset_index(drop=True)
    return train, test


def write_data_folder(train: pd.DataFrame, test: pd.DataFrame, work: Path) -> Path:
    """``work/data`` with all training rows and a small validation file, for ``distiltune.train``.

    The Trainer evaluates and checkpoints once at the end of training even with no evaluation schedule, inside the
    timed loop; a small validation file keeps that cost (which naive does not pay) negligible. Accuracy is measured
    on all held-out rows afterwards.
    """
    data_dir = work / "data"
    data_dir.mkdir()
    train.to_json(data_dir / "train.jsonl", orient="records", lines=True)
    test.head(VALIDATION_ROWS).to_json(data_dir / "validation.jsonl", orient="records", lines=True)
    return data_dir


# --- the naive notebook pipeline ----------------------------------------------------------------------


def run_naive(
    args: argparse.Namespace, train: pd.DataFrame, test: pd.DataFrame, work: Path, device: str
) -> tuple[dict, Any, Any]:
    """The naive pipeline's figures, and its trained model and tokenizer (for the interleaved inference rounds)."""
    model, tokenizer, trained = train_naive(args, train, work, device)
    by_batch_size, logits, infer_memory = naive_inference_by_batch_size(
        model, tokenizer, test["text"].tolist(), args, device
    )
    best_batch_size = max(by_batch_size, key=by_batch_size.get)
    accuracy = float((logits.argmax(-1) == test["label"].to_numpy()).mean())
    figures = {
        **trained,
        "inference_samples_per_second": by_batch_size[best_batch_size],
        "inference_batch_size": best_batch_size,
        "inference_samples_per_second_by_batch_size": by_batch_size,
        "inference_peak_memory_mb": infer_memory.peak_mb,
        "accuracy": accuracy,
        "non_embedding_params": non_embedding_parameters(model),
    }
    return figures, model, tokenizer


def train_naive(
    args: argparse.Namespace, train: pd.DataFrame, work: Path, device: str
) -> tuple[Any, Any, dict[str, Any]]:
    """The notebook recipe: pad every review to max_length, fp32, random batches, a default Trainer.

    Returns the trained model (eval mode), its tokenizer and the training figures.
    """
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distiltune.modeling import resolve_model_name

    path = resolve_model_name(args.model)
    transformers.set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    trainer = naive_trainer(
        model,
        naive_tokenize(tokenizer, train, args.max_length),
        work / "naive",
        device,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        num_train_epochs=args.epochs,
        logging_steps=50,
    )
    with PeakMemory(device) as train_memory:
        # Wall time around trainer.train(), measured the same way as distiltune's metrics.json train_seconds.
        started = time.perf_counter()
        trainer.train()
        runtime = time.perf_counter() - started

    return (
        trainer.model.eval(),
        tokenizer,
        {
            "train_seconds": round(runtime, 2),
            "train_samples_per_second": round(len(train) * args.epochs / runtime, 3),
            "precision": "fp32",
            "train_peak_memory_mb": train_memory.peak_mb,
        },
    )


def naive_tokenize(tokenizer: Any, train: pd.DataFrame, max_length: int) -> Any:
    """The notebook recipe's training set: every review tokenized up front and padded to ``max_length``."""
    import datasets

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        return tokenizer(batch["text"], padding="max_length", truncation=True, max_length=max_length)

    return datasets.Dataset.from_pandas(train).map(tokenize, batched=True).remove_columns(["text"])


def naive_trainer(
    model: Any,
    train_set: Any,
    output_dir: Path,
    device: str,
    *,
    batch_size: int,
    lr: float,
    seed: int,
    callbacks: list[Any] | None = None,
    **schedule: Any,
) -> Any:
    """The notebook recipe's default ``Trainer`` (fp32, random batches, no checkpoints). ``schedule`` holds the
    ``TrainingArguments`` that say how long it trains and logs (``num_train_epochs`` or ``max_steps``,
    ``logging_steps``)."""
    from transformers import Trainer, TrainingArguments

    training_args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        seed=seed,
        report_to="none",
        save_strategy="no",
        use_cpu=device == "cpu",
        disable_tqdm=True,
        **schedule,
    )
    return Trainer(model=model, args=training_args, train_dataset=train_set, callbacks=callbacks)


def naive_inference_by_batch_size(
    model: Any, tokenizer: Any, texts: list[str], args: argparse.Namespace, device: str
) -> tuple[dict[int, float], np.ndarray, PeakMemory]:
    """Naive inference samples/s at each of ``--naive-eval-batch-sizes``, with the last pass's logits and memory.

    Notebooks use anything from the Trainer's default of 8 to 64; the naive baseline gets its fastest.
    """
    by_batch_size: dict[int, float] = {}
    for batch_size in (int(size) for size in args.naive_eval_batch_sizes.split(",")):
        logits, seconds, memory = naive_predict(model, tokenizer, texts, args, device, batch_size)
        by_batch_size[batch_size] = round(len(texts) / seconds, 2)
    return by_batch_size, logits, memory


def naive_predict(
    model: Any, tokenizer: Any, texts: list[str], args: argparse.Namespace, device: str, batch_size: int
) -> tuple[np.ndarray, float, PeakMemory]:
    """Eager fp32, batches in input order, every batch padded to max_length."""
    import torch

    outputs = []
    with PeakMemory(device) as memory:
        started = time.perf_counter()
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(
                    texts[start : start + batch_size],
                    padding="max_length",
                    truncation=True,
                    max_length=args.max_length,
                    return_tensors="pt",
                ).to(device)
                outputs.append(model(**batch).logits.float().cpu().numpy())
        seconds = time.perf_counter() - started
    return np.concatenate(outputs), seconds, memory


# --- the strong peer: the Trainer recipe a knowledgeable user writes today ------------------------------------

#: What makes the peer's Trainer strong, each one a documented transformers / torch switch (no distiltune code).
PEER_SAMPLING = "group_by_length"
PEER_OPTIMIZER = "adamw_torch_fused"
PEER_ATTENTION = "sdpa"


def peer_precision(device: str) -> str:
    """The peer's training precision: bf16 where the hardware runs it natively and fast, fp16 on pre-Ampere GPUs,
    else fp32.

    This is distiltune's own detection (``distiltune.hardware.resolve_precision("auto", ...)``: CUDA compute
    capability 8.0+, or a CPU with AVX512-BF16/AMX whose bf16 matmul measures at least 1.3x fp32), not a second
    rule: on a GPU it agrees with ``torch.cuda.is_bf16_supported()``, and on a CPU it spares the peer the emulated
    bf16 a flag-only check would pick. Both pipelines then train in the same precision, so the comparison is
    about the rest of the recipe.
    """
    from distiltune.hardware import resolve_precision

    return resolve_precision("auto", device)


def load_peer_model(path: str | Path) -> Any:
    """The pretrained encoder with a fresh 2-label head and PyTorch's fused scaled-dot-product attention."""
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(
        path,
        num_labels=len(LABEL_NAMES),
        id2label=dict(enumerate(LABEL_NAMES)),
        label2id={name: index for index, name in enumerate(LABEL_NAMES)},
        attn_implementation=PEER_ATTENTION,
    )


def peer_tokenize(tokenizer: Any, train: pd.DataFrame, max_length: int) -> Any:
    """The peer's training set: truncated to ``max_length`` but not padded; the collator pads each batch."""
    import datasets

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        return tokenizer(batch["text"], truncation=True, max_length=max_length)

    return datasets.Dataset.from_pandas(train).map(tokenize, batched=True).remove_columns(["text"])


def peer_trainer(
    model: Any,
    train_set: Any,
    tokenizer: Any,
    output_dir: Path,
    device: str,
    *,
    batch_size: int,
    lr: float,
    seed: int,
    precision: str | None = None,
    callbacks: list[Any] | None = None,
    **arguments: Any,
) -> Any:
    """The strong peer's ``Trainer``: dynamic padding (``DataCollatorWithPadding``, to a multiple of 8 on CUDA for
    the tensor cores), length-grouped batches (``train_sampling_strategy="group_by_length"``; transformers 5 has no
    ``group_by_length`` argument), bf16 / fp16 where :func:`peer_precision` finds it, fused AdamW and no checkpoints.
    ``arguments`` are further ``TrainingArguments``: how long it trains and logs (``num_train_epochs`` or
    ``max_steps``, ``logging_steps``), or one of the above changed on purpose (training_mfu.py's KEY=VALUE)."""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    precision = precision or peer_precision(device)
    settings: dict[str, Any] = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": batch_size,
        "learning_rate": lr,
        "seed": seed,
        "report_to": "none",
        "save_strategy": "no",
        "use_cpu": device == "cpu",
        "disable_tqdm": True,
        "train_sampling_strategy": PEER_SAMPLING,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "optim": PEER_OPTIMIZER,
    }
    training_args = TrainingArguments(**(settings | arguments))
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if device == "cuda" else None)
    return Trainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=callbacks,
    )


def peer_recipe(trainer: Any) -> dict[str, Any]:
    """What the peer's Trainer really runs with, read back from it (recorded in the results)."""
    args, config = trainer.args, trainer.model.config
    return {
        "collator": type(trainer.data_collator).__name__,
        "pad_to_multiple_of": getattr(trainer.data_collator, "pad_to_multiple_of", None),
        "train_sampling_strategy": args.train_sampling_strategy,
        "optim": str(getattr(args.optim, "value", args.optim)),
        "bf16": args.bf16,
        "fp16": args.fp16,
        "attn_implementation": getattr(config, "_attn_implementation", None),
        # Left at the model's default: SDPA then runs its dropout path in training (distiltune turns it off).
        "attention_dropout": next(
            (
                getattr(config, name)
                for name in ("attention_dropout", "attention_probs_dropout_prob")
                if hasattr(config, name)
            ),
            None,
        ),
        "dataloader_num_workers": args.dataloader_num_workers,
    }


def train_peer(
    args: argparse.Namespace, train: pd.DataFrame, work: Path, device: str
) -> tuple[Any, Any, dict[str, Any]]:
    """The strong peer's training, timed like :func:`train_naive`. Returns the trained model (eval mode), its
    tokenizer and the training figures."""
    import transformers
    from transformers import AutoTokenizer

    from distiltune.modeling import resolve_model_name

    path = resolve_model_name(args.model)
    transformers.set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = load_peer_model(path)
    precision = peer_precision(device)
    trainer = peer_trainer(
        model,
        peer_tokenize(tokenizer, train, args.max_length),
        tokenizer,
        work / "peer",
        device,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        precision=precision,
        num_train_epochs=args.epochs,
        logging_steps=50,
    )
    with PeakMemory(device) as train_memory:
        started = time.perf_counter()
        trainer.train()
        runtime = time.perf_counter() - started
    return (
        trainer.model.eval(),
        tokenizer,
        {
            "train_seconds": round(runtime, 2),
            "train_samples_per_second": round(len(train) * args.epochs / runtime, 3),
            "precision": precision,
            "train_peak_memory_mb": train_memory.peak_mb,
            "recipe": peer_recipe(trainer),
        },
    )


def peer_pipeline(model: Any, tokenizer: Any, device: str, precision: str) -> Any:
    """``transformers.pipeline("text-classification")`` over the trained model, its weights cast to the precision
    it trained in (bf16 / fp16), as ``pipeline(..., dtype=torch.bfloat16)`` loads them."""
    import torch
    from transformers import pipeline

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is not None:
        model = model.to(dtype)
    return pipeline("text-classification", model=model, tokenizer=tokenizer, device=torch.device(device))


def peer_predict(
    classify: Any, texts: list[str], max_length: int, device: str, batch_size: int
) -> tuple[np.ndarray, float, PeakMemory]:
    """The pipeline over all texts in input order, ``batch_size`` at a time, each batch padded to its longest row.
    Returns the predicted label ids, the seconds it took and its memory."""
    with PeakMemory(device) as memory:
        started = time.perf_counter()
        outputs = classify(texts, batch_size=batch_size, truncation=True, max_length=max_length)
        seconds = time.perf_counter() - started
    label_ids = classify.model.config.label2id
    return np.array([label_ids[output["label"]] for output in outputs]), seconds, memory


def run_peer(
    args: argparse.Namespace, train: pd.DataFrame, test: pd.DataFrame, work: Path, device: str
) -> tuple[dict[str, Any], Any]:
    """The strong peer's figures, and its inference pipeline (for the interleaved inference rounds).

    Its accuracy comes from the pipeline's predictions in input order. (``Trainer.predict`` would length-group the
    held-out rows too, since ``group_by_length`` also sets the evaluation sampler, and return its predictions in
    that shuffled order.)
    """
    model, tokenizer, trained = train_peer(args, train, work, device)
    non_embedding = non_embedding_parameters(model)
    classify = peer_pipeline(model, tokenizer, device, trained["precision"])
    texts = test["text"].tolist()
    classify(texts[: min(8, len(texts))], batch_size=8, truncation=True, max_length=args.max_length)  # warm-up
    by_batch_size: dict[int, float] = {}
    for batch_size in (int(size) for size in args.peer_eval_batch_sizes.split(",")):
        predicted, seconds, memory = peer_predict(classify, texts, args.max_length, device, batch_size)
        by_batch_size[batch_size] = round(len(texts) / seconds, 2)
    best_batch_size = max(by_batch_size, key=by_batch_size.get)
    figures = {
        **trained,
        "inference_samples_per_second": by_batch_size[best_batch_size],
        "inference_batch_size": best_batch_size,
        "inference_samples_per_second_by_batch_size": by_batch_size,
        "inference_precision": trained["precision"],
        "inference_peak_memory_mb": memory.peak_mb,
        "accuracy": float((predicted == test["label"].to_numpy()).mean()),
        "non_embedding_params": non_embedding,
    }
    return figures, classify


# --- distiltune's defaults ----------------------------------------------------------------------------


def run_distiltune(args: argparse.Namespace, data_dir: Path, work: Path, device: str, n_train: int) -> dict:
    import distiltune

    overrides = {
        "model.name": args.model,
        "data.dataset": str(data_dir),
        "data.text_column": "text",
        "data.label_column": "label",
        "data.label_names": LABEL_NAMES,
        "data.max_length": args.max_length,
        "train.epochs": args.epochs,
        "train.batch_size": args.batch_size,
        "train.lr": args.lr,
        "train.seed": args.seed,
        # Same budget as naive: no evaluation or checkpoint inside the training loop (the naive Trainer has
        # none), so train_runtime measures training only.
        "train.eval_strategy": "steps",
        "train.eval_steps": 10**9,
        "train.logging_steps": 50,
        "run.output_dir": str(work / "runs"),
        "run.name": "distiltune",
    }
    if args.eval_batch_size is not None:
        overrides["train.eval_batch_size"] = args.eval_batch_size
    # accuracy_equivalence.py --set: a distiltune setting changed on purpose, to measure what it does to accuracy.
    for assignment in getattr(args, "set", None) or []:
        key, _, value = assignment.partition("=")
        overrides[key.strip()] = value.strip()
    with PeakMemory(device) as train_memory:
        run = distiltune.train(None, overrides)
    env = json.loads((run.dir / "env.json").read_text())
    return {
        "run_dir": run.dir,
        "train_seconds": run.metrics["train_seconds"],
        "train_samples_per_second": round(n_train * args.epochs / run.metrics["train_seconds"], 3),
        "precision": run.metrics["precision"],
        "speed": env.get("speed"),
        "train_peak_memory_mb": train_memory.peak_mb,
        "non_embedding_params": non_embedding_parameters(run.load().model),
    }


def time_classifier(classifier: Any, test: pd.DataFrame, device: str, batch_size: int | None) -> dict[str, Any]:
    """Predict every held-out review once, after a warm-up; ``batch_size`` None uses the classifier's default."""
    texts = test["text"].tolist()
    classifier.predict_proba(texts[: min(8, len(texts))], batch_size=batch_size)  # warm-up
    with PeakMemory(device) as memory:
        started = time.perf_counter()
        probabilities = classifier.predict_proba(texts, batch_size=batch_size)
        seconds = time.perf_counter() - started
    return {
        "samples_per_second": round(len(texts) / seconds, 2),
        "accuracy": float((probabilities.argmax(-1) == test["label"].to_numpy()).mean()),
        "peak_memory_mb": memory.peak_mb,
        "predicted": probabilities.argmax(-1),
    }


# --- report -------------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers

    import distiltune
    from distiltune.export import export_run

    transformers.logging.set_verbosity_error()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train, test = load_rows(args.data, args.train_samples, args.eval_samples, args.seed)
    real_tokens = _real_token_count(args.model, train, args.max_length)
    per_review = real_tokens / len(train)
    print(f"{len(train)} training / {len(test)} held-out reviews, {per_review:.0f} real tokens per training review")

    size = args.matmul_size or (8192 if device == "cuda" else 2048)
    matmul_checks: dict[str, list[float]] = {dtype: [matmul_gflops(device, dtype, size)] for dtype in ("fp32", "bf16")}
    print(f"matmul {size}x{size}: fp32 {matmul_checks['fp32'][0]} GFLOP/s, bf16 {matmul_checks['bf16'][0]} GFLOP/s")

    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "hardware": hardware_summary(device),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "data": {"train_rows": len(train), "eval_rows": len(test), "real_tokens_per_epoch": real_tokens},
    }
    with tempfile.TemporaryDirectory(prefix="distiltune-bench-") as work_name:
        work = Path(work_name)
        data_dir = write_data_folder(train, test, work)

        print("naive pipeline: training ...", flush=True)
        naive, naive_model, naive_tokenizer = run_naive(args, train, test, work, device)
        print("strong peer (Trainer recipe): training ...", flush=True)
        peer, peer_classify = run_peer(args, train, test, work, device)
        print("distiltune defaults: training ...", flush=True)
        ours = run_distiltune(args, data_dir, work, device, len(train))
        classifier = distiltune.load(ours["run_dir"])
        assert classifier.label_names == LABEL_NAMES
        default_inference = time_classifier(classifier, test, device, args.eval_batch_size)
        ours["inference_samples_per_second"] = default_inference["samples_per_second"]
        ours["accuracy"] = default_inference["accuracy"]
        ours["inference_peak_memory_mb"] = default_inference["peak_memory_mb"]

        # A VM's matmul speed drifts by 2x or more over minutes: check it again once both pipelines have trained, and
        # measure training against the faster check, so that a slow spell during one check cannot flatter it.
        # (Three pipelines train between the two checks now.)
        for dtype, checks in matmul_checks.items():
            checks.append(matmul_gflops(device, dtype, size))
        peak = {dtype: max(checks) for dtype, checks in matmul_checks.items()}
        print(f"matmul {size}x{size} again: fp32 {matmul_checks['fp32'][1]} GFLOP/s, bf16 {matmul_checks['bf16'][1]}")
        results["matmul_gflops"] = {"size": size, **peak, "checks": matmul_checks}
        for pipeline in (naive, peer, ours):
            add_training_flops(pipeline, real_tokens * args.epochs, peak)
        peer_name = f"peer pipeline {peer['inference_precision']}"
        inference = {
            "naive eager fp32": {
                "samples_per_second": naive["inference_samples_per_second"],
                "accuracy": naive["accuracy"],
                "model": "naive",
            },
            peer_name: {
                "samples_per_second": peer["inference_samples_per_second"],
                "accuracy": peer["accuracy"],
                "model": "peer",
                "batch_size": peer["inference_batch_size"],
            },
        }
        texts = test["text"].tolist()
        rerun = {
            "naive eager fp32": functools.partial(
                naive_predict, naive_model, naive_tokenizer, texts, args, device, naive["inference_batch_size"]
            ),
            peer_name: functools.partial(
                peer_predict, peer_classify, texts, args.max_length, device, peer["inference_batch_size"]
            ),
        }
        fp32_classifier = distiltune.load(ours["run_dir"], precision="fp32")
        fp32 = time_classifier(fp32_classifier, test, device, args.eval_batch_size)
        inference["distiltune torch fp32"] = {**_public(fp32), "model": "distiltune"}
        rerun["distiltune torch fp32"] = functools.partial(
            fp32_classifier.predict_proba, texts, batch_size=args.eval_batch_size
        )
        bf16_classifier = distiltune.load(ours["run_dir"], precision="bf16")
        bf16 = time_classifier(bf16_classifier, test, device, args.eval_batch_size)
        inference["distiltune torch bf16"] = {**_public(bf16), "model": "distiltune", **_agreement(bf16, fp32)}
        rerun["distiltune torch bf16"] = functools.partial(
            bf16_classifier.predict_proba, texts, batch_size=args.eval_batch_size
        )
        if not args.skip_onnx:
            for quantize in (None, "int8"):
                name = "onnx int8" if quantize else "onnx fp32"
                print(f"exporting {name} ...", flush=True)
                # force: the benchmark reports agreement on all held-out rows below, whatever the export check says.
                exported = export_run(ours["run_dir"], quantize=quantize, force=True)
                onnx_classifier = distiltune.load(ours["run_dir"], backend="onnx", export_dir=exported.path)
                timed = time_classifier(onnx_classifier, test, "cpu", args.eval_batch_size)
                inference[f"distiltune {name}"] = {
                    **_public(timed),
                    "model": "distiltune",
                    **_agreement(timed, fp32),
                    "size_mb": exported.report["size_mb"],
                }
                rerun[f"distiltune {name}"] = functools.partial(
                    onnx_classifier.predict_proba, texts, batch_size=args.eval_batch_size
                )
        if args.inference_rounds > 0:
            print(f"inference: {args.inference_rounds} more rounds of every backend, taking turns ...", flush=True)
            record_rounds(inference, rerun, len(texts), args.inference_rounds)
            naive["inference_samples_per_second"] = inference["naive eager fp32"]["samples_per_second"]
            peer["inference_samples_per_second"] = inference[peer_name]["samples_per_second"]
            default_name = f"distiltune torch {classifier.precision}"
            if default_name in inference:
                ours["inference_samples_per_second"] = inference[default_name]["samples_per_second"]
        ours = {k: v for k, v in ours.items() if k != "run_dir"}
        results.update(compare_pipelines(naive, peer, ours, inference))

    args.output_dir.mkdir(parents=True, exist_ok=True)
    target = args.output_dir / f"{time.strftime('%Y-%m-%d')}_{socket.gethostname()}.json"
    target.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print_tables(results)
    print(f"Results written to {target}")


def add_training_flops(pipeline: dict[str, Any], real_tokens: float, peak_gflops: dict[str, float]) -> None:
    """Real tokens/s, model TFLOP/s (``6 * non-embedding params * real tokens``) and the fraction of the matmul peak
    in the pipeline's precision, from its ``train_seconds`` (``real_tokens``: all epochs)."""
    seconds = pipeline["train_seconds"]
    pipeline["train_tokens_per_second"] = round(real_tokens / seconds, 1)
    flops = 6 * pipeline["non_embedding_params"] * real_tokens
    pipeline["train_tflops_per_second"] = round(flops / seconds / 1e12, 4)
    reference_peak = peak_gflops["bf16" if pipeline["precision"] == "bf16" else "fp32"]
    pipeline["fraction_of_matmul_peak"] = round(flops / seconds / 1e9 / reference_peak, 4)


#: The baselines distiltune is measured against, in the order the tables show them: the results' ``ratios`` has a
#: ``vs_<name>`` entry for each, and every inference row a ``speedup_vs_<name>``.
BASELINES = ("naive", "peer")
#: Figures compared as distiltune / baseline in ``ratios`` (accuracy is compared as a difference in points).
RATIO_KEYS = (
    "train_samples_per_second",
    "inference_samples_per_second",
    "train_peak_memory_mb",
    "inference_peak_memory_mb",
)


def ratios_against(ours: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float | None]:
    """distiltune / baseline for each of :data:`RATIO_KEYS` (above 1 is faster, or more memory) and the accuracy
    difference distiltune - baseline in points."""
    ratios: dict[str, float | None] = {
        key: round(ours[key] / baseline[key], 2) if ours.get(key) and baseline.get(key) else None for key in RATIO_KEYS
    }
    ratios["accuracy_points"] = round(100 * (ours["accuracy"] - baseline["accuracy"]), 2)
    return ratios


def compare_pipelines(
    naive: dict[str, Any], peer: dict[str, Any], ours: dict[str, Any], inference: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The results' ``pipelines``, ``ratios`` (distiltune against each baseline: ``vs_naive``, ``vs_peer``) and
    ``inference`` (each backend's speed-up over both baselines' headline inference figure, updated in place)."""
    pipelines = {"naive": naive, "peer": peer, "distiltune": ours}
    for row in inference.values():
        for name in BASELINES:
            row[f"speedup_vs_{name}"] = round(
                row["samples_per_second"] / pipelines[name]["inference_samples_per_second"], 2
            )
    return {
        "pipelines": pipelines,
        "ratios": {f"vs_{name}": ratios_against(ours, pipelines[name]) for name in BASELINES},
        "inference": inference,
    }


def interleaved_rounds(
    predictors: dict[str, Callable[[], Any]], samples: int, rounds: int
) -> dict[str, tuple[float, list[float]]]:
    """samples/s of each predictor (which predicts ``samples`` texts per call) over ``rounds`` rounds in which every
    predictor runs once in turn: (median, per-round figures). Slow drift of the machine's speed then hits every
    backend alike instead of whichever happened to run during a slow spell. Each round starts one predictor later
    than the one before, so no backend always runs right after the same other one (a torch run right after ONNX
    Runtime's, say)."""
    names = list(predictors)
    by_round: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            predictors[name]()
            by_round[name].append(round(samples / (time.perf_counter() - started), 2))
    return {name: (round(float(np.median(figures)), 2), figures) for name, figures in by_round.items()}


def record_rounds(
    rows: dict[str, dict[str, Any]], predictors: dict[str, Callable[[], Any]], samples: int, rounds: int
) -> None:
    """Time ``predictors`` in :func:`interleaved_rounds` and update each one's row in place: its first-pass figure
    moves to ``first_pass_samples_per_second`` and ``samples_per_second`` becomes the median of the rounds."""
    for name, (median, figures) in interleaved_rounds(predictors, samples, rounds).items():
        row = rows[name]
        row["first_pass_samples_per_second"] = row["samples_per_second"]
        row["samples_per_second"], row["samples_per_second_by_round"] = median, figures


def _public(timed: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in timed.items() if k != "predicted"}


def _agreement(timed: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
    return {"agreement_with_torch_fp32": float((timed["predicted"] == reference["predicted"]).mean())}


def _real_token_count(model: str, train: pd.DataFrame, max_length: int) -> int:
    from distiltune.modeling import load_tokenizer

    tokenizer = load_tokenizer(model)
    encoded = tokenizer(train["text"].tolist(), truncation=True, max_length=max_length)
    return int(sum(len(ids) for ids in encoded["input_ids"]))


def print_tables(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    hardware = results["hardware"]
    pipelines = results["pipelines"]
    ours = pipelines["distiltune"]
    table = Table(title=f"Training: {hardware['gpu'] or hardware['cpu']} ({hardware['torch_threads']} threads)")
    columns = ("metric", *BASELINES, "distiltune", *(f"vs {name}" for name in BASELINES))
    for column in columns:
        table.add_column(column, justify="left" if column == "metric" else "right")
    rows = [
        ("precision", "precision"),
        ("train samples/s", "train_samples_per_second"),
        ("train real tokens/s", "train_tokens_per_second"),
        ("train TFLOP/s (6·N·tokens)", "train_tflops_per_second"),
        ("fraction of matmul peak", "fraction_of_matmul_peak"),
        ("train peak memory (MB)", "train_peak_memory_mb"),
        ("inference samples/s", "inference_samples_per_second"),
        ("inference peak memory (MB)", "inference_peak_memory_mb"),
        ("accuracy", "accuracy"),
    ]
    for label, key in rows:
        versus = [_versus(key, ours, pipelines[name], results["ratios"][f"vs_{name}"]) for name in BASELINES]
        table.add_row(label, *(_fmt(pipelines[name].get(key)) for name in (*BASELINES, "distiltune")), *versus)
    console.print(table)
    peak = results["matmul_gflops"]
    console.print(f"matmul peak: fp32 {peak['fp32']} GFLOP/s, bf16 {peak['bf16']} GFLOP/s")
    recipe = pipelines["peer"].get("recipe") or {}
    if recipe:
        console.print("peer recipe: " + ", ".join(f"{key} {value}" for key, value in recipe.items()))
    inference = Table(title="Inference on the held-out reviews")
    columns = ("backend", "samples/s", *(f"vs {name}" for name in BASELINES), "accuracy", "agreement with fp32")
    for column in columns:
        inference.add_column(column, justify="left" if column == "backend" else "right")
    for name, row in results["inference"].items():
        inference.add_row(
            name,
            _fmt(row["samples_per_second"]),
            *(f"{row[f'speedup_vs_{baseline}']:.2f}x" for baseline in BASELINES),
            _fmt(row["accuracy"]),
            _fmt(row.get("agreement_with_torch_fp32")),
        )
    console.print(inference)


def _versus(key: str, ours: dict[str, Any], baseline: dict[str, Any], ratios: dict[str, Any]) -> str:
    """A table cell comparing distiltune with a baseline: the saved ratio, the accuracy difference in points, or a
    ratio of the two figures for the rows ``ratios`` leaves out."""
    if key == "accuracy":
        return f"{ratios['accuracy_points']:+.2f} pts"
    ratio = ratios.get(key)
    if ratio is None and isinstance(ours.get(key), int | float) and isinstance(baseline.get(key), int | float):
        ratio = round(ours[key] / baseline[key], 2) if baseline[key] else None
    return "-" if ratio is None else f"{ratio:.2f}x"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value < 10 else f"{value:,.1f}"
    return "-" if value is None else str(value)


if __name__ == "__main__":
    main()
