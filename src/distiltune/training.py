"""``train(config) -> Run``: data, model and method into the HF Trainer, then a complete run directory.

The Trainer is the engine (loop, optimizer, checkpoints, best-model selection); this module is the glue:
it resolves the config, prints a dataset summary, picks device and precision, and after training writes
the best model, metrics, predictions and plots.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distiltune import runs
from distiltune.config import Config, load_config
from distiltune.data import PreparedData, load_data
from distiltune.data.collate import PaddingCollator
from distiltune.data.fingerprint import splits_fingerprint, token_fingerprint
from distiltune.data.tokenize import token_lengths, tokenize_frame
from distiltune.errors import ConfigError
from distiltune.hardware import resolve_device
from distiltune.heads import attach_head
from distiltune.memory import PeakMemory
from distiltune.methods import count_parameters, get_method
from distiltune.metrics import SELECTABLE_METRICS
from distiltune.modeling import load_model_for_classification, load_tokenizer, model_max_length
from distiltune.speed import SpeedPlan, plan_speed

logger = logging.getLogger("distiltune")


@dataclass
class Run:
    """A finished run: its directory, resolved config and final metrics."""

    dir: Path
    config: Config
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)

    def load(self, **kwargs: Any) -> Any:
        """The trained model as a :class:`~distiltune.predict.Classifier`."""
        from distiltune.predict import Classifier

        return Classifier.load(self.dir, **kwargs)


def train(
    config: Config | str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    resume: str | Path | None = None,
    callbacks: Sequence[Any] | None = None,
) -> Run:
    """Fine-tune according to ``config`` (a Config, or a YAML path) plus dotted ``overrides``.

    ``resume=RUN_DIR`` continues an interrupted or crashed run from its newest complete checkpoint, with the
    config saved in that run (``config`` and ``overrides`` must then be left out).

    ``callbacks`` are extra ``transformers.TrainerCallback`` objects (or classes) handed to the Trainer after
    distiltune's own, e.g. to log to an experiment tracker or time steps.
    """
    from distiltune.reproducibility import deterministic_mode
    from distiltune.resume import supervised

    if resume is not None:
        return _resume(resume, config, overrides, callbacks)
    if isinstance(config, Config):
        config = load_config(None, {**_flatten(config.to_dict()), **_overrides_dict(overrides)})
    else:
        config = load_config(config, overrides)
    run_dir = runs.create_run_dir(
        config.run.output_dir, config.model.name, config.data.dataset, config.method.name, config.run.name
    )
    with _log_to(run_dir / runs.LOG_FILE), supervised(run_dir) as interrupts:
        logger.info("Run directory: %s", run_dir)
        with deterministic_mode(config.train.deterministic):
            return _train_in(run_dir, config, interrupts=interrupts, callbacks=callbacks)


def _resume(run_dir: str | Path, config: Any, overrides: Any, callbacks: Sequence[Any] | None = None) -> Run:
    from distiltune.reproducibility import deterministic_mode
    from distiltune.resume import prepare_resume, supervised

    if config is not None or overrides:
        raise ConfigError(
            "--resume continues a run with the config saved in its directory; other options cannot change it.",
            "Drop the other options, or start a new run with --config RUN_DIR/config.yaml and your changes.",
        )
    plan = prepare_resume(run_dir)
    with _log_to(plan.run_dir / runs.LOG_FILE), supervised(plan.run_dir, plan) as interrupts:
        where = plan.checkpoint.name if plan.checkpoint else "the start (no complete checkpoint)"
        logger.info("Resuming %s from %s", plan.run_dir, where)
        with deterministic_mode(plan.config.train.deterministic):
            return _train_in(
                plan.run_dir, plan.config, interrupts=interrupts, checkpoint=plan.checkpoint, callbacks=callbacks
            )


def _train_in(
    run_dir: Path,
    config: Config,
    interrupts: Any = None,
    checkpoint: Path | None = None,
    callbacks: Sequence[Any] | None = None,
) -> Run:
    import transformers

    method = get_method(config.method.name)
    if method.name == "tfidf":  # a classical baseline: no encoder, no Trainer
        from distiltune.tfidf import train_tfidf

        return train_tfidf(run_dir, config)
    seed = config.train.seed
    transformers.set_seed(seed)
    data = load_data(config.data, seed=seed)
    metric = config.train.metric or data.metric
    if metric not in SELECTABLE_METRICS or (metric in ("f1", "precision", "recall") and len(data.labels.names) != 2):
        raise ConfigError(
            f"train.metric '{metric}' is not available here.",
            f"Choose one of: {', '.join(m for m in SELECTABLE_METRICS if m not in ('f1', 'precision', 'recall'))}.",
        )
    tokenizer = load_tokenizer(config.model.name, config.model.revision, config.model.trust_remote_code)
    device = resolve_device(config.train.device)
    speed = plan_speed(config.train, device)
    model = load_model_for_classification(
        config.model.name,
        data.labels.id2label,
        config.model.revision,
        config.model.trust_remote_code,
        attention_dropout=0.0 if config.train.fast_attention else None,
        attn_implementation=speed.attn_implementation,
    )
    model = attach_head(model, config.model)
    # Prompt/prefix virtual tokens take position embeddings of their own.
    limit = model_max_length(model.config, tokenizer) - config.method.reserved_positions()
    max_length = data.config.max_length or 256
    if max_length > limit:
        if config.data.max_length is not None:
            raise ConfigError(
                f"data.max_length {max_length} exceeds the model's limit of {limit} tokens.",
                f"Use --max-length {limit} or less.",
            )
        max_length = limit
    lr = config.train.lr if config.train.lr is not None else config.method.default_lr
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(data.config, max_length=max_length),
        train=dataclasses.replace(config.train, metric=metric, lr=lr),
    )
    config.to_yaml(run_dir / runs.CONFIG_FILE)
    _log_summary(data, tokenizer, max_length)

    precision = speed.precision
    model = method.apply(model, config.method)
    parameters = count_parameters(model)
    logger.info(
        "Method %s: %s trainable of %s parameters (%.2f%%). Device %s, precision %s, lr %g.",
        method.name,
        f"{parameters['trainable_params']:,}",
        f"{parameters['total_params']:,}",
        parameters["trainable_percent"],
        device,
        precision,
        lr,
    )
    environment = _environment(device, precision)
    environment["speed"] = {
        **speed.to_dict(),
        "attn_implementation": getattr(model.config, "_attn_implementation", None) or "eager",
    }
    runs.write_json(run_dir / runs.ENV_FILE, environment)
    logger.info("Speed features: %s", _describe_speed(environment["speed"]))

    train_set = _tokenize(data.train, tokenizer, max_length, speed, "train")
    eval_set = _tokenize(data.validation, tokenizer, max_length, speed, "validation")
    from distiltune.interrupts import InterruptCallback

    extra_callbacks = [InterruptCallback(interrupts)] if interrupts is not None else []
    extra_callbacks.extend(callbacks or [])
    trainer, history = _build_trainer(
        config, model, tokenizer, train_set, eval_set, run_dir, device, precision, extra_callbacks, speed=speed
    )
    started = time.perf_counter()
    train_samples_per_second = None
    with PeakMemory(device) as peak_memory:
        if method.trains:
            output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
            train_samples_per_second = output.metrics.get("train_samples_per_second")
        else:
            trainer.evaluate()
    train_seconds = time.perf_counter() - started
    model = trainer.model

    model_dir = run_dir / runs.MODEL_DIR
    model_dir.mkdir()
    method.save(model, model_dir)
    tokenizer.save_pretrained(model_dir)
    runs.write_json(
        model_dir / "labels.json",
        {"id2label": data.labels.id2label, "max_length": max_length, "is_pair": data.is_pair, "method": method.name},
    )
    if method.export is not None:
        method.export(model, model_dir, config.method)

    from distiltune.evaluation import evaluate_frame

    final: dict[str, Any] = {
        "method": method.name,
        "model": config.model.name,
        "dataset": config.data.dataset,
        "metric_for_best": metric,
    }
    predictions: list[dict[str, Any]] = []
    for split, frame in (("validation", data.validation), ("test", data.test)):
        if frame is None:
            continue
        split_metrics, split_predictions = evaluate_frame(
            model,
            tokenizer,
            frame,
            data.labels.names,
            max_length,
            speed.inference_batch_size,
            device,
            precision,
            sort_by_length=speed.sort_by_length,
            dynamic_padding=speed.dynamic_padding,
            max_batch_tokens=speed.inference_batch_tokens,
        )
        final[split] = split_metrics
        predictions = split_predictions  # keep the last evaluated split: test when present
        final["predictions_split"] = split
    best = _best_row(history.rows, metric)
    final.update(
        {
            "best_step": best.get("step") if best else None,
            "best_epoch": best.get("epoch") if best else None,
            "train_seconds": round(train_seconds, 3),
            "train_samples_per_second": train_samples_per_second,
            "train_rows": len(data.train),
            "data_fingerprint": splits_fingerprint(data.splits()),
            "token_fingerprint": token_fingerprint(train_set, eval_set),
            **parameters,
            **peak_memory.as_dict(),
            "device": str(device),
            "precision": precision,
        }
    )
    runs.write_jsonl(run_dir / runs.PREDICTIONS_FILE, predictions)
    runs.write_json(run_dir / runs.METRICS_FILE, final)
    from distiltune.plots import plot_run

    plot_run(run_dir)
    logger.info("Saved the best model to %s", model_dir)
    return Run(dir=run_dir, config=config, metrics=final, history=history.rows)


def _build_trainer(
    config: Config,
    model: Any,
    tokenizer: Any,
    train_set: Any,
    eval_set: Any,
    run_dir: Path,
    device: Any,
    precision: str,
    extra_callbacks: list[Any] | None = None,
    speed: SpeedPlan | None = None,
) -> tuple[Any, Any]:
    from transformers import EarlyStoppingCallback, TrainingArguments

    from distiltune.callbacks import HistoryCallback
    from distiltune.checkpoints import ResumableTrainer
    from distiltune.metrics import trainer_compute_metrics

    t = config.train
    speed = speed or plan_speed(t, device)
    steps_per_epoch = max(1, math.ceil(len(train_set) / (t.batch_size * t.gradient_accumulation_steps)))
    total_steps = t.max_steps if t.max_steps > 0 else math.ceil(steps_per_epoch * t.epochs)
    metric = t.metric or "f1_macro"
    eval_interval = steps_per_epoch if t.eval_strategy == "epoch" else t.eval_steps
    history = HistoryCallback(run_dir / runs.HISTORY_FILE)
    callbacks: list[Any] = [history, *(extra_callbacks or [])]
    if t.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=t.early_stopping_patience))
    args = TrainingArguments(
        output_dir=str(run_dir / runs.CHECKPOINTS_DIR),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=speed.eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.lr,
        weight_decay=t.weight_decay,
        warmup_steps=int(round(t.warmup_fraction * total_steps)),
        lr_scheduler_type=t.scheduler,
        max_grad_norm=t.max_grad_norm,
        eval_strategy=t.eval_strategy,
        eval_steps=t.eval_steps if t.eval_strategy == "steps" else None,
        save_strategy=t.eval_strategy,
        save_steps=t.eval_steps if t.eval_strategy == "steps" else None,
        save_total_limit=1,  # with load_best_model_at_end the best checkpoint is kept too
        load_best_model_at_end=True,
        metric_for_best_model=metric if metric != "loss" else "loss",
        greater_is_better=metric != "loss",
        logging_strategy="steps",
        logging_steps=max(1, min(t.logging_steps, eval_interval)),
        seed=t.seed,
        data_seed=t.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device.type == "cpu",
        train_sampling_strategy="group_by_length" if speed.group_by_length else "random",
        dataloader_num_workers=speed.dataloader_workers,
        dataloader_pin_memory=speed.pin_memory,
        optim=speed.optimizer,
        # The filter tests every step's loss for NaN/inf on the CPU, so the CPU waits for the GPU every step.
        logging_nan_inf_filter=not speed.async_steps,
        torch_compile=speed.compile,
        full_determinism=False,  # train.deterministic is handled by distiltune.reproducibility.deterministic_mode
        report_to="none",
        disable_tqdm=not _console_shows_progress(),
        save_only_model=False,
    )
    trainer = ResumableTrainer(
        model=model,
        args=args,
        data_collator=PaddingCollator.for_tokenizer(
            tokenizer,
            max_length=None if speed.dynamic_padding else config.data.max_length,
            pad_to_multiple_of=speed.pad_to_multiple_of,
        ),
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        compute_metrics=trainer_compute_metrics(list(model.config.id2label.values())),
        callbacks=callbacks,
        length_group_batches=speed.length_group_batches,
    )
    if args.disable_tqdm:
        # Without bars the Trainer prints every log dict instead; history.jsonl and train.log already hold them.
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    return trainer, history


def _console_shows_progress() -> bool:
    """Trainer progress bars only where distiltune's console shows INFO lines: not under ``train --quiet``.

    With no console handler (library use) the bars stay, as with a plain Trainer.
    """
    consoles = [h for h in logging.getLogger("distiltune").handlers if not isinstance(h, logging.FileHandler)]
    return not consoles or any(h.level <= logging.INFO for h in consoles)


def _tokenize(frame: pd.DataFrame, tokenizer: Any, max_length: int, speed: SpeedPlan, split: str) -> Any:
    if not speed.cache_tokenized:
        return tokenize_frame(frame, tokenizer, max_length)
    from distiltune.data.cache import cached_tokenize

    dataset, hit = cached_tokenize(frame, tokenizer, max_length)
    logger.info("Tokenized %s: %d rows (%s).", split, len(dataset), "from cache" if hit else "cached for next time")
    return dataset


def _describe_speed(speed: dict[str, Any]) -> str:
    flags = (
        "dynamic_padding",
        "group_by_length",
        "sort_by_length",
        "cache_tokenized",
        "fast_attention",
        "async_steps",
        "compile",
    )
    on = [name for name in flags if speed.get(name)]
    measured = speed.get("cpu_bf16_speedup")
    precision = speed["precision"] + (f" (bf16 matmul measured {measured}x fp32 here)" if measured else "")
    return (
        f"precision {precision}, attention {speed['attn_implementation']}, optimizer {speed['optimizer']}, "
        f"workers {speed['dataloader_workers']}, on: {', '.join(on) or 'none'}"
    )


def _best_row(rows: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    key = "eval_loss" if metric == "loss" else metric
    scored = [row for row in rows if row.get(key) is not None]
    if not scored:
        return None
    # Ties go to the earliest row, as in the Trainer (it only replaces the best on strict improvement).
    return (min if metric == "loss" else max)(scored, key=lambda row: row[key])


def _log_summary(data: PreparedData, tokenizer: Any, max_length: int) -> None:
    logger.info(
        "Dataset %s (%s): %d labels %s",
        data.config.dataset,
        "sentence pairs" if data.is_pair else "single text",
        len(data.labels.names),
        data.labels.names,
    )
    for split, frame in data.splits().items():
        counts = frame["label"].value_counts().reindex(range(len(data.labels.names)), fill_value=0)
        balance = ", ".join(f"{data.labels.names[i]} {100 * c / len(frame):.0f}%" for i, c in counts.items())
        lengths = token_lengths(frame, tokenizer) if split == "train" else None
        if lengths is not None:
            p50, p90, p99 = np.percentile(lengths, [50, 90, 99]).astype(int)
            truncated = 100 * float((lengths > max_length).mean())
            length_text = (
                f"; tokens p50 {p50}, p90 {p90}, p99 {p99}, max {int(lengths.max())}"
                f" ({truncated:.1f}% truncated at {max_length})"
            )
        else:
            length_text = ""
        logger.info("  %-10s %6d rows; %s%s", split, len(frame), balance, length_text)


def _environment(device: Any, precision: str) -> dict[str, Any]:
    import platform

    import datasets
    import peft
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "datasets": datasets.__version__,
        "device": str(device),
        "precision": precision,
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
    }


class _log_to:
    """Copy the distiltune and transformers logs into the run's train.log while the run lasts."""

    def __init__(self, path: Path) -> None:
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.handler.setLevel(logging.INFO)
        self.loggers = [logging.getLogger("distiltune"), logging.getLogger("transformers")]
        self.previous_level = logging.NOTSET

    def __enter__(self) -> None:
        for log in self.loggers:
            log.addHandler(self.handler)
        distiltune_log = logging.getLogger("distiltune")
        self.previous_level = distiltune_log.level
        if distiltune_log.level == logging.NOTSET or distiltune_log.level > logging.INFO:
            distiltune_log.setLevel(logging.INFO)

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None and not isinstance(exc[1], KeyboardInterrupt):
            logging.getLogger("distiltune").error("Run failed: %s", exc[1])
        for log in self.loggers:
            log.removeHandler(self.handler)
        logging.getLogger("distiltune").setLevel(self.previous_level)
        self.handler.close()


def _flatten(raw: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for section, values in raw.items():
        for key, value in values.items():
            out[f"{section}.{key}"] = value
    return out


def _overrides_dict(overrides: list[str] | dict[str, Any] | None) -> dict[str, Any]:
    from distiltune.config import _parse_overrides

    return _parse_overrides(overrides)


__all__ = ["Run", "train"]
_ = pd
