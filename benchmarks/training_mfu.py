"""Steady-state training throughput and model FLOPs utilization (MFU): the naive pipeline, the strong peer and
distiltune's defaults.

For each ``--configs`` entry ``LENGTH:BATCH[:compile]`` it trains DistilBERT-base (its architecture with random
weights: speed does not depend on the weight values) on real IMDb reviews for ``--warmup-steps + --steps``
optimizer steps and times the last ``--steps`` only, so start-up (CUDA context, cuBLAS handles, allocator
growth, torch.compile) is left out. ``--naive-configs`` does the same for the notebook recipe (pad to max
length, fp32, random batches, a default Trainer), and ``--peer-configs`` for the strong peer of ``throughput.py``
(``DataCollatorWithPadding``, ``group_by_length`` sampling, bf16 where the hardware has it, SDPA, fused AdamW; its
``KEY=VALUE`` parts are further ``TrainingArguments``, e.g. ``dataloader_num_workers=4``, and ``compile`` sets
``torch_compile``). Every distiltune and peer row also gets its samples/s over the naive and the peer row of the
same ``LENGTH:BATCH`` (``vs_naive``, ``vs_peer``), where one was measured.

A callback counts, over the timed steps, the real tokens (attention mask) and the padded tokens the model was
fed, and synchronizes the device at both ends. Model FLOPs are ``6 * non-embedding parameters * real tokens``
plus the attention score/value matmuls on real tokens, ``12 * layers * hidden * sum(length^2)``; padding is
work the hardware does, not useful work, so it is not counted. MFU is reported against the large-matmul rate
measured in the same process at the run's precision and, on known GPUs, against the datasheet's dense bf16
peak (the usual MFU denominator).

Run from the repository root::

    .venv/bin/python benchmarks/training_mfu.py                               # CPU: 128:16 and 512:16
    .venv/bin/python benchmarks/training_mfu.py --configs 128:32 128:256 128:256:compile 512:32 512:64 \\
        --naive-configs 128:32 512:32 --peer-configs 128:32 128:256 512:32 512:64 --train-samples 16000  # a GPU
    .venv/bin/python benchmarks/training_mfu.py --configs 64:4 --naive-configs 64:4 --peer-configs 64:4 \\
        --steps 2 --warmup-steps 1 --train-samples 64                          # smoke

For "the largest batch that fits", list growing batch sizes (``128:768 128:1536 128:3072``): a configuration that
runs out of memory is recorded with its error and the others go on.

Writes ``benchmarks/results/training_mfu_<date>_<host>.json`` after every configuration (a run cut short
keeps what it measured) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inference_speed import build_random_model  # noqa: E402  (sibling scripts, not a package)
from throughput import (  # noqa: E402
    DEFAULT_DATA,
    LABEL_NAMES,
    REPO_ROOT,
    hardware_summary,
    load_peer_model,
    load_rows,
    matmul_gflops,
    naive_tokenize,
    naive_trainer,
    non_embedding_parameters,
    peer_precision,
    peer_recipe,
    peer_tokenize,
    peer_trainer,
    write_data_folder,
)

#: Dense bf16 tensor-core peak from the vendors' datasheets (SXM parts), TFLOP/s. Matched against the device name.
DATASHEET_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "L4": 121.0}


@dataclass(frozen=True)
class TrainConfigSpec:
    """``LENGTH:BATCH[:compile][:KEY=VALUE]...``; KEY=VALUE is a distiltune setting (``train.async_steps=false``)."""

    max_length: int
    batch_size: int
    compile: bool = False
    overrides: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> TrainConfigSpec:
        parts = text.split(":")
        extras = parts[2:]
        if len(parts) < 2 or any(part != "compile" and "=" not in part for part in extras):
            raise SystemExit(f"error: configuration '{text}' is not LENGTH:BATCH[:compile][:KEY=VALUE]...")
        try:
            length, batch = int(parts[0]), int(parts[1])
        except ValueError:
            raise SystemExit(f"error: configuration '{text}': LENGTH and BATCH must be integers") from None
        overrides = tuple(tuple(part.split("=", 1)) for part in extras if part != "compile")
        return cls(length, batch, "compile" in extras, overrides)  # type: ignore[arg-type]

    @property
    def label(self) -> str:
        extras = (["compile"] if self.compile else []) + [f"{key}={value}" for key, value in self.overrides]
        return ":".join([str(self.max_length), str(self.batch_size), *extras])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Folder with train.jsonl (IMDb).")
    parser.add_argument("--architecture", default="distilbert-base", choices=("distilbert-base", "bert-base"))
    parser.add_argument("--model", type=Path, default=None, help="A local model directory instead (real weights).")
    parser.add_argument("--tokenizer", default="minilm", help="Tokenizer for the random model ('minilm' or a DIR).")
    parser.add_argument(
        "--configs", nargs="+", default=["128:16", "512:16"], help="distiltune: LENGTH:BATCH[:compile]"
    )
    parser.add_argument("--naive-configs", nargs="*", default=["128:16", "512:16"], help="naive: LENGTH:BATCH")
    parser.add_argument(
        "--peer-configs",
        nargs="*",
        default=["128:16", "512:16"],
        help="the strong peer: LENGTH:BATCH[:compile][:KEY=VALUE]..., KEY a TrainingArguments field",
    )
    parser.add_argument("--steps", type=int, default=20, help="Timed optimizer steps.")
    parser.add_argument("--warmup-steps", type=int, default=5, help="Untimed steps before them.")
    parser.add_argument("--train-samples", type=int, default=2000, help="IMDb training reviews loaded.")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--matmul-size", type=int, default=None, help="Square matmul size (2048 CPU, 8192 GPU).")
    parser.add_argument(
        "--time-budget", type=float, default=None, help="Seconds; configurations not started by then are skipped."
    )
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default benchmarks/results/...).")
    args = parser.parse_args()
    args.configs = [TrainConfigSpec.parse(text) for text in args.configs]
    args.naive_configs = [TrainConfigSpec.parse(text) for text in args.naive_configs]
    args.peer_configs = [TrainConfigSpec.parse(text) for text in args.peer_configs]
    if any(spec.compile or spec.overrides for spec in args.naive_configs):
        parser.error("--naive-configs: the naive recipe takes LENGTH:BATCH only")
    unknown = {key for spec in args.peer_configs for key, _ in spec.overrides} - training_argument_names()
    if unknown:
        parser.error(f"--peer-configs: {', '.join(sorted(unknown))} is not a TrainingArguments field")
    if args.steps < 1 or args.warmup_steps < 1:
        parser.error("--steps and --warmup-steps must be at least 1")
    return args


def training_argument_names() -> set[str]:
    import dataclasses

    from transformers import TrainingArguments

    return {field.name for field in dataclasses.fields(TrainingArguments)}


def peer_arguments(spec: TrainConfigSpec) -> dict[str, Any]:
    """A peer configuration's extra ``TrainingArguments``: ``compile`` -> ``torch_compile``, ``KEY=VALUE`` with the
    value read as YAML (``4`` an int, ``true`` a bool, ``null`` None, anything else a string)."""
    import yaml

    arguments: dict[str, Any] = {"torch_compile": True} if spec.compile else {}
    arguments.update({key: yaml.safe_load(value) for key, value in spec.overrides})
    return arguments


# --- timing ---------------------------------------------------------------------------------------------


def make_step_timer(warmup_steps: int, device: str) -> Any:
    """A TrainerCallback timing the optimizer steps after ``warmup_steps`` and counting the tokens they saw."""
    import torch
    from transformers import TrainerCallback

    def synchronize() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.started: float | None = None
            self.seconds: float | None = None
            self.timed_steps = 0
            self.samples = 0
            # Device tensors, read once at the end: a .item() per batch would synchronize every step.
            self.real_tokens: Any = 0
            self.padded_tokens: Any = 0
            self.squared_lengths: Any = 0
            # CPU time between steps (fetching the next batch, logging) and inside them (queuing the work).
            self.between_steps = 0.0
            self.in_steps = 0.0
            self._last_step_end: float | None = None
            self._step_begin: float | None = None
            self._hook: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            # Kept out of torch.compile's graph: Python-side counting would make it recompile every step.
            self._hook = model.register_forward_pre_hook(torch.compiler.disable(self._count), with_kwargs=True)

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._step_begin = time.perf_counter()
            if self.started is not None and self._last_step_end is not None:
                self.between_steps += self._step_begin - self._last_step_end

        def _count(self, module: Any, positional: tuple, inputs: dict[str, Any]) -> None:
            if self.started is None or not module.training:
                return
            mask = inputs.get("attention_mask")
            ids = inputs["input_ids"]
            lengths = mask.sum(dim=1) if mask is not None else ids.new_full((ids.shape[0],), ids.shape[1])
            self.samples += ids.shape[0]
            self.padded_tokens += ids.numel()
            self.real_tokens = self.real_tokens + lengths.sum()
            self.squared_lengths = self.squared_lengths + (lengths.double() ** 2).sum()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            now = time.perf_counter()
            if self.started is not None and self._step_begin is not None:
                self.in_steps += now - self._step_begin
            self._last_step_end = now
            if state.global_step == warmup_steps:
                synchronize()
                self.started = time.perf_counter()
            elif state.global_step == state.max_steps and self.started is not None:
                synchronize()
                self.seconds = time.perf_counter() - self.started
                self.timed_steps = state.global_step - warmup_steps
                self.started = None  # the final evaluation's forwards are not counted

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self._hook is not None:
                self._hook.remove()

        def figures(self) -> dict[str, Any]:
            if not self.seconds:
                raise RuntimeError("the timed steps never finished (fewer steps than --warmup-steps + --steps?)")
            return {
                "timed_steps": self.timed_steps,
                "timed_seconds": round(self.seconds, 3),
                "samples": self.samples,
                "real_tokens": int(self.real_tokens),
                "padded_tokens": int(self.padded_tokens),
                "sum_squared_lengths": float(self.squared_lengths),
                "cpu_seconds_between_steps": round(self.between_steps, 3),
                "cpu_seconds_in_steps": round(self.in_steps, 3),
            }

    return StepTimer()


def flops_figures(
    timed: dict[str, Any],
    model_config: Any,
    non_embedding: int,
    peaks_gflops: dict[str, float],
    precision: str,
    datasheet_tflops: float | None,
) -> dict[str, Any]:
    seconds = timed["timed_seconds"]
    layers = model_config.num_hidden_layers
    hidden = model_config.hidden_size
    dense = 6 * non_embedding * timed["real_tokens"]
    attention = 12 * layers * hidden * timed["sum_squared_lengths"]
    achieved = (dense + attention) / seconds
    figures = {
        "train_samples_per_second": round(timed["samples"] / seconds, 2),
        "train_real_tokens_per_second": round(timed["real_tokens"] / seconds, 1),
        "padding_fraction": round(1 - timed["real_tokens"] / timed["padded_tokens"], 4),
        "model_tflops_per_second": round(achieved / 1e12, 3),
        "attention_share_of_flops": round(attention / (dense + attention), 4),
        "mfu_vs_measured_matmul": round(achieved / 1e9 / peaks_gflops["bf16" if precision == "bf16" else "fp32"], 4),
    }
    if datasheet_tflops:
        figures["mfu_vs_datasheet_bf16"] = round(achieved / 1e12 / datasheet_tflops, 4)
    return figures


# --- the three pipelines ------------------------------------------------------------------------------------


def train_distiltune(
    args: argparse.Namespace, spec: TrainConfigSpec, model_dir: Path, data_dir: Path, work: Path, device: str
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    import distiltune

    timer = make_step_timer(args.warmup_steps, device)
    overrides = {
        "model.name": str(model_dir),
        "data.dataset": str(data_dir),
        "data.text_column": "text",
        "data.label_column": "label",
        "data.label_names": LABEL_NAMES,
        "data.max_length": spec.max_length,
        "train.max_steps": args.warmup_steps + args.steps,
        "train.batch_size": spec.batch_size,
        "train.lr": args.lr,
        "train.seed": args.seed,
        "train.compile": spec.compile,
        **dict(spec.overrides),
        # No evaluation or checkpoint inside the timed steps.
        "train.eval_strategy": "steps",
        "train.eval_steps": 10**9,
        "train.logging_steps": 10**6,
        "run.output_dir": str(work / "runs"),
        "run.name": spec.label.replace(":", "_"),
    }
    run = distiltune.train(None, overrides, callbacks=[timer])
    speed = json.loads((run.dir / "env.json").read_text())["speed"]
    extra = {"speed": speed, "peak_memory_mb": run.metrics.get("peak_memory_mb")}
    shutil.rmtree(run.dir, ignore_errors=True)  # a base-size model per configuration adds up
    return timer.figures(), run.metrics["precision"], extra


def train_naive(
    args: argparse.Namespace,
    spec: TrainConfigSpec,
    model_dir: Path,
    train: Any,
    work: Path,
    device: str,
    tokenized: dict[int, Any],
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    transformers.set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    if spec.max_length not in tokenized:  # configurations of one length share the padded training set
        tokenized[spec.max_length] = naive_tokenize(tokenizer, train, spec.max_length)
    timer = make_step_timer(args.warmup_steps, device)
    trainer = naive_trainer(
        model,
        tokenized[spec.max_length],
        work / "naive",
        device,
        batch_size=spec.batch_size,
        lr=args.lr,
        seed=args.seed,
        callbacks=[timer],
        max_steps=args.warmup_steps + args.steps,
        logging_steps=10**6,
    )
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    peak_mb = round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None
    return timer.figures(), "fp32", {"peak_memory_mb": peak_mb}


def train_peer(
    args: argparse.Namespace,
    spec: TrainConfigSpec,
    model_dir: Path,
    train: Any,
    work: Path,
    device: str,
    tokenized: dict[int, Any],
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    import torch
    import transformers
    from transformers import AutoTokenizer

    transformers.set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = load_peer_model(model_dir)
    if spec.max_length not in tokenized:  # configurations of one length share the truncated training set
        tokenized[spec.max_length] = peer_tokenize(tokenizer, train, spec.max_length)
    timer = make_step_timer(args.warmup_steps, device)
    precision = peer_precision(device)
    trainer = peer_trainer(
        model,
        tokenized[spec.max_length],
        tokenizer,
        work / "peer",
        device,
        batch_size=spec.batch_size,
        lr=args.lr,
        seed=args.seed,
        precision=precision,
        callbacks=[timer],
        max_steps=args.warmup_steps + args.steps,
        logging_steps=10**6,
        **peer_arguments(spec),
    )
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    peak_mb = round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None
    return timer.figures(), precision, {"peak_memory_mb": peak_mb, "recipe": peer_recipe(trainer)}


def add_same_shape_ratios(runs: list[dict[str, Any]]) -> None:
    """``vs_naive`` / ``vs_peer``: each distiltune and peer row's samples/s over the naive and the peer row of the
    same LENGTH:BATCH (the first measured one, with no extra settings), where there is one."""
    baselines: dict[tuple[str, str], float] = {}
    for row in runs:
        plain = not row.get("compile") and not row.get("overrides")
        key = (row["pipeline"], f"{row.get('max_length')}:{row.get('batch_size')}")
        if plain and "train_samples_per_second" in row and key not in baselines:
            baselines[key] = row["train_samples_per_second"]
    for row in runs:
        if "train_samples_per_second" not in row or row["pipeline"] == "naive":
            continue
        shape = f"{row['max_length']}:{row['batch_size']}"
        for baseline in ("naive", "peer"):
            reference = baselines.get((baseline, shape))
            if baseline != row["pipeline"] and reference:
                row[f"vs_{baseline}"] = round(row["train_samples_per_second"] / reference, 2)


# --- report ------------------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    # A console handler above INFO: distiltune then leaves the Trainer's progress bars off (one line per figure).
    quiet = logging.StreamHandler()
    quiet.setLevel(logging.WARNING)
    logging.getLogger("distiltune").addHandler(quiet)
    started = time.monotonic()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    specs = args.configs + args.naive_configs + args.peer_configs
    needed = max(spec.batch_size for spec in specs) * (args.warmup_steps + args.steps)
    train, test = load_rows(args.data, max(args.train_samples, needed), 16, args.seed)
    if len(train) < needed:
        print(f"note: {len(train)} reviews for up to {needed} samples: the largest batches see reviews twice")
    size = args.matmul_size or (8192 if device == "cuda" else 2048)
    peaks = {dtype: matmul_gflops(device, dtype, size) for dtype in ("fp32", "bf16")}
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else ""
    datasheet = next((tflops for name, tflops in DATASHEET_BF16_TFLOPS.items() if name in gpu), None)
    print(f"matmul {size}: fp32 {peaks['fp32']} GFLOP/s, bf16 {peaks['bf16']} GFLOP/s; datasheet bf16 {datasheet}")

    output = args.output or REPO_ROOT / "benchmarks" / "results" / (
        f"training_mfu_{time.strftime('%Y-%m-%d')}_{socket.gethostname()}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "hardware": hardware_summary(device),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "model": str(args.model) if args.model else f"{args.architecture} (random weights)",
        "matmul_gflops": {"size": size, **peaks},
        "datasheet_bf16_tflops": datasheet,
        "runs": [],
    }
    plan = (
        [("naive", spec) for spec in args.naive_configs]
        + [("peer", spec) for spec in args.peer_configs]
        + [("distiltune", spec) for spec in args.configs]
    )
    tokenized: dict[str, dict[int, Any]] = {"naive": {}, "peer": {}}
    with tempfile.TemporaryDirectory(prefix="distiltune-mfu-") as work_name:
        work = Path(work_name)
        model_dir = args.model or build_random_model(args.architecture, work / "model", args.tokenizer)
        data_dir = write_data_folder(train, test, work)
        reference = transformers.AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
        model_config, non_embedding = reference.config, non_embedding_parameters(reference)
        del reference
        results["non_embedding_params"] = non_embedding
        for pipeline, spec in plan:
            if args.time_budget is not None and time.monotonic() - started > args.time_budget:
                results["runs"].append({"pipeline": pipeline, "config": spec.label, "skipped": "time budget"})
                continue
            print(f"{pipeline} {spec.label} ...", flush=True)
            row: dict[str, Any] = {"pipeline": pipeline, "config": spec.label, **vars(spec)}
            row["overrides"] = dict(spec.overrides)
            try:
                if pipeline == "naive":
                    timed, precision, extra = train_naive(
                        args, spec, model_dir, train, work, device, tokenized["naive"]
                    )
                elif pipeline == "peer":
                    timed, precision, extra = train_peer(args, spec, model_dir, train, work, device, tokenized["peer"])
                else:
                    timed, precision, extra = train_distiltune(args, spec, model_dir, data_dir, work, device)
                row.update(precision=precision, **timed, **extra)
                row.update(flops_figures(timed, model_config, non_embedding, peaks, precision, datasheet))
            except Exception as error:  # one failing configuration must not lose the others' figures
                row["error"] = f"{type(error).__name__}: {error}"
            row["wall_seconds_so_far"] = round(time.monotonic() - started, 1)
            results["runs"].append(row)
            add_same_shape_ratios(results["runs"])
            print(json.dumps({k: v for k, v in row.items() if k != "speed"}), flush=True)
            output.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
            if device == "cuda":
                torch.cuda.empty_cache()
    print_table(results)
    print(f"Results written to {output}")


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    hardware = results["hardware"]
    table = Table(title=f"Training, {results['model']}: {hardware['gpu'] or hardware['cpu']}")
    columns = (
        "pipeline",
        "len:batch",
        "precision",
        "samples/s",
        "real tokens/s",
        "TFLOP/s",
        "MFU (matmul)",
        "MFU (datasheet)",
        "peak MB",
        "vs naive",
        "vs peer",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("pipeline", "len:batch") else "right")
    for row in results["runs"]:
        if "train_samples_per_second" not in row:
            table.add_row(row["pipeline"], row["config"], row.get("error") or row.get("skipped", "-"))
            continue
        datasheet = row.get("mfu_vs_datasheet_bf16")
        table.add_row(
            row["pipeline"],
            row["config"],
            row["precision"],
            f"{row['train_samples_per_second']:,.1f}",
            f"{row['train_real_tokens_per_second']:,.0f}",
            f"{row['model_tflops_per_second']:.2f}",
            f"{row['mfu_vs_measured_matmul']:.1%}",
            "-" if datasheet is None else f"{datasheet:.1%}",
            str(row.get("peak_memory_mb") or "-"),
            *(f"{row[key]:.2f}x" if key in row else "-" for key in ("vs_naive", "vs_peer")),
        )
    Console().print(table)


if __name__ == "__main__":
    main()
