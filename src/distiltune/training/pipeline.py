"""``train(config) -> Run``: data, model and method into the HF Trainer, then a complete run directory.

The Trainer is the engine (loop, optimizer, checkpoints, best-model selection); this module is the glue, in named
phases: resolve the settings and write ``config.yaml`` (:func:`prepare_run`), build the model
(:func:`build_model`), tokenize (:func:`tokenize_splits`), build the Trainer (:func:`build_trainer`), fit
(:func:`fit`), save the best model (:func:`save_model`), evaluate it and write the final files. A method without an
encoder (``Method.fit``) takes :func:`~distiltune.training.classical.fit_without_trainer` instead.

Under ``torchrun`` / ``accelerate launch`` every process runs all of this; the main process alone creates the run
directory and writes the files and logs (:mod:`~distiltune.training.distributed`), the Trainer trains with DDP, and the
final evaluation is shared out between the processes and gathered back in order.
"""

from __future__ import annotations

import contextlib
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
from distiltune.config import Config, load_config, resolve_settings
from distiltune.data import PreparedData, load_data
from distiltune.data.cache import cached_tokenize
from distiltune.data.collate import PaddingCollator
from distiltune.data.fingerprint import splits_fingerprint, token_fingerprint
from distiltune.data.long_text import (
    LongTextOptions,
    aggregate_windows,
    check_window_settings,
    document_labels,
    summarize_lengths,
)
from distiltune.data.multilabel import describe_label_sets
from distiltune.data.tokenize import DOCUMENT_COLUMN, tokenize_frame
from distiltune.errors import ConfigError
from distiltune.hardware import resolve_device
from distiltune.inference.batched import InferenceSettings, predict_logits
from distiltune.methods import Method, count_parameters, get_method
from distiltune.methods.support import require_support
from distiltune.modeling import load_encoder_config, load_model_for_classification, load_tokenizer, model_max_length
from distiltune.modeling.heads import attach_head
from distiltune.tasks.base import SINGLE_LABEL, Task, task_for
from distiltune.training import distributed
from distiltune.training.callbacks import ConsoleProgress, HistoryCallback
from distiltune.training.classical import fit_without_trainer
from distiltune.training.interrupts import InterruptCallback
from distiltune.training.losses import imbalance_warning, make_compute_loss, resolve_class_weights
from distiltune.training.memory import PeakMemory
from distiltune.training.reproducibility import deterministic_mode
from distiltune.training.resume import prepare_resume, run_config, supervised
from distiltune.training.run import (
    Run,
    check_calibration_settings,
    check_metric,
    evaluate_splits,
    finish_run,
    run_record,
    write_calibration,
)
from distiltune.training.speed import SpeedPlan, plan_speed
from distiltune.training.tracking import attach_tracking, check_tracker, tracker_run_closed_on_error
from distiltune.training.trainer import ResumableTrainer

logger = logging.getLogger("distiltune")


def train(
    config: Config | str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    resume: str | Path | None = None,
    callbacks: Sequence[Any] | None = None,
    data_summary: bool = True,
) -> Run:
    """Fine-tune according to ``config`` (a Config, or a YAML path) plus dotted ``overrides``.

    ``resume=RUN_DIR`` continues an interrupted or crashed run from its newest complete checkpoint, with the
    config saved in that run (``config`` and ``overrides`` must then be left out).

    ``callbacks`` are extra ``transformers.TrainerCallback`` objects (or classes) handed to the Trainer after
    distiltune's own, e.g. to log to an experiment tracker or time steps.

    Started by ``torchrun`` or ``accelerate launch``, every process calls this with the same arguments and they
    train one run together (``train.batch_size`` per process); every process returns the same :class:`Run`.

    ``data_summary=False`` leaves out the dataset summary (rows, label balance, token lengths): ``compare`` logs it
    once per tokenizer instead of once per run.
    """
    if resume is not None:
        return _resume(resume, config, overrides, callbacks, data_summary)
    config = load_config(config, overrides)
    # A method that cannot train this encoder says so now, from config.json alone: no run directory, no weights.
    require_support(config.method, config.model)
    # So does a mistake in the data (a misspelt path or preset, a missing column, a bad row): a run directory
    # that failed here could not be resumed into a better one, since resuming re-reads the same settings.
    with runs.held_log() as early_log:  # its records go to the run's train.log once it exists
        data = load_data(config.data, seed=config.train.seed)
        # And so do settings that only the data and the encoder's limits can refuse.
        check_before_run(config, data)
    distributed.init_process_group(resolve_device(config.train.device))
    run_dir = distributed.on_main(
        lambda: runs.create_run_dir(
            config.run.output_dir, config.model.name, config.data.dataset, config.method.name, config.run.name
        )
    )
    distributed.require_shared_directory(run_dir)
    run_log = _run_log(run_dir)
    with run_log, supervised(run_dir, record=distributed.is_main_process()) as interrupts:
        early_log.write_to(run_log)
        logger.info("Run directory: %s", run_dir)
        with deterministic_mode(config.train.deterministic):
            return run_in(
                run_dir, config, interrupts=interrupts, callbacks=callbacks, data_summary=data_summary, data=data
            )


def check_before_run(config: Config, data: PreparedData) -> None:
    """Refuse, before a run directory exists, the settings that need the data or the encoder's limits to be judged:
    class weights for labels the data does not have, a decision threshold the task cannot fit, a metric the task
    does not report, a max length or long-text window beyond the model, a tracker that is not installed. The run
    then checks them again as it prepares (:func:`prepare_run`), which also covers ``--resume``."""
    method = get_method(config.method.name)
    resolved = config.model_copy(update={"data": data.config})
    task = task_for(resolved)
    resolve_class_weights(config.train.class_weights, data.labels.names, data.train["label"], task)
    check_calibration_settings(config.train, len(data.labels.names), task)
    check_tracker(config.train.report_to)
    if not method.trains_with_trainer:
        settings = resolve_settings(config, model_limit=None, uses_encoder=False)
    else:
        m = config.model
        tokenizer = load_tokenizer(m.name, m.revision, m.trust_remote_code)
        encoder_config = load_encoder_config(m.name, m.revision, m.trust_remote_code)
        settings = resolve_settings(config, model_max_length(encoder_config, tokenizer))
        long_text = settings.apply(resolved).data.long_text_options()
        check_window_settings(tokenizer, settings.max_length, long_text, data.is_pair)
    check_metric(settings.metric, len(data.labels.names), task)


def _resume(
    run_dir: str | Path,
    config: Any,
    overrides: Any,
    callbacks: Sequence[Any] | None = None,
    data_summary: bool = True,
) -> Run:
    if config is not None or overrides:
        raise ConfigError(
            "--resume continues a run with the config saved in its directory; other options cannot change it.",
            "Drop the other options, or start a new run with --config RUN_DIR/config.yaml and your changes.",
        )
    saved = run_config(run_dir)
    distributed.init_process_group(resolve_device(saved.train.device))
    plan = distributed.on_main(lambda: prepare_resume(run_dir, world_size=distributed.world_size()))
    with _run_log(plan.run_dir), supervised(plan.run_dir, plan, record=distributed.is_main_process()) as interrupts:
        where = plan.checkpoint.name if plan.checkpoint else "the start (no complete checkpoint)"
        logger.info("Resuming %s from %s", plan.run_dir, where)
        with deterministic_mode(plan.config.train.deterministic):
            return run_in(
                plan.run_dir,
                plan.config,
                interrupts=interrupts,
                checkpoint=plan.checkpoint,
                callbacks=callbacks,
                data_summary=data_summary,
            )


def _run_log(run_dir: Path) -> contextlib.AbstractContextManager[Any]:
    """The run's ``train.log``, written by the main process only."""
    if not distributed.is_main_process():
        return contextlib.nullcontext()
    return runs.log_to(run_dir / runs.LOG_FILE, extra=("transformers",), log_failure=True)


def run_in(
    run_dir: Path,
    config: Config,
    interrupts: Any = None,
    checkpoint: Path | None = None,
    callbacks: Sequence[Any] | None = None,
    data_summary: bool = True,
    data: PreparedData | None = None,
) -> Run:
    """Train into an existing run directory (new, or resumed from ``checkpoint``) and write every output; ``data``
    is the run's data when already loaded (from ``config.data``)."""
    import transformers

    method = get_method(config.method.name)
    transformers.set_seed(config.train.seed)
    if data is None:
        data = load_data(config.data, seed=config.train.seed)
    if not method.trains_with_trainer:  # no Trainer, no DDP: the main process fits, the others get its Run
        return distributed.on_main(lambda: fit_without_trainer(run_dir, config, method, data))

    prepared = prepare_run(run_dir, config, method, data, data_summary)
    model, parameters = build_model(prepared)
    train_set = tokenize_splits(prepared, data.train, "train")
    eval_set = tokenize_splits(prepared, data.validation, "validation")
    extra_callbacks: list[Any] = []
    if interrupts is not None:
        extra_callbacks.append(InterruptCallback(interrupts))
    extra_callbacks.extend(callbacks or [])
    trainer, history = build_trainer(prepared, model, train_set, eval_set, extra_callbacks)
    fitted = fit(trainer, method, checkpoint, prepared.speed.device, config.train.report_to)
    model = trainer.model
    distributed.on_main(lambda: save_model(prepared, model))

    settings = InferenceSettings(
        max_length=prepared.max_length,
        batch_size=prepared.speed.inference_batch_size,
        max_batch_tokens=prepared.speed.inference_batch_tokens,
        sort_by_length=prepared.speed.sort_by_length,
        dynamic_padding=prepared.speed.dynamic_padding,
        device=prepared.device,
        precision=prepared.speed.precision,
        long_text=prepared.long_text,
    )

    def predict_here(texts: Sequence[str], pairs: Sequence[str] | None) -> np.ndarray:
        return predict_logits(model, prepared.tokenizer, texts, pairs, settings)

    # Several processes: each predicts a contiguous share of the rows, gathered back in order (one process: as is).
    predict = distributed.sharded(predict_here)

    config = prepared.config
    evaluation = evaluate_splits(predict, data, config.train, prepared.task)
    distributed.on_main(lambda: write_calibration(prepared.run_dir / runs.MODEL_DIR, evaluation))
    best = best_row(history.rows, config.train.metric or prepared.task.default_metric)
    record = run_record(
        evaluation,
        method=method.name,
        model=config.model.name,
        dataset=config.data.dataset,
        metric_for_best=config.train.metric,
        best_step=best.get("step") if best else None,
        best_epoch=best.get("epoch") if best else None,
        train_seconds=round(fitted.seconds, 3),
        train_samples_per_second=fitted.samples_per_second,
        train_rows=len(data.train),
        train_windows=len(train_set) if prepared.long_text.mode == "chunks" else None,
        data_fingerprint=splits_fingerprint(data.splits()),
        token_fingerprint=token_fingerprint(train_set, eval_set),
        method_facts={**parameters, "device": str(prepared.device), "precision": prepared.speed.precision},
        peak_memory=fitted.peak_memory,
    )
    return distributed.on_main(lambda: finish_run(run_dir, config, record, evaluation.predictions, history.rows))


# --- phases -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedRun:
    """Everything resolved before the model loads: the config as written to ``config.yaml``, the data, the
    tokenizer, the device and the speed plan."""

    run_dir: Path
    config: Config
    method: Method
    data: PreparedData
    tokenizer: Any
    device: Any
    speed: SpeedPlan
    class_weights: list[float] | None = None
    """One cross-entropy weight per label id (``train.class_weights``); None: unweighted."""
    task: Task[Any] = field(default_factory=task_for)
    """The kind of task (:func:`distiltune.tasks.base.task_for`): loss, metrics, calibration, outputs."""

    @property
    def max_length(self) -> int:
        return int(self.config.data.max_length or 0)

    @property
    def long_text(self) -> LongTextOptions:
        """How texts longer than the max length are read (the resolved ``data.long_text``)."""
        return self.config.data.long_text_options()


def prepare_run(
    run_dir: Path, config: Config, method: Method, data: PreparedData, data_summary: bool = True
) -> PreparedRun:
    """Resolve the max length, learning rate, metric and long-text reading once (``config.resolve_settings``),
    refuse what cannot run (a method the encoder cannot run, class weights for unknown labels, a decision threshold
    on more than two labels, a stride that does not fit a window) before anything trains, write the resolved
    ``config.yaml`` and log the dataset summary (unless ``data_summary`` is off)."""
    task = task_for(config.model_copy(update={"data": data.config}))  # multi-label is resolved from the data
    class_weights = resolve_class_weights(config.train.class_weights, data.labels.names, data.train["label"], task)
    check_calibration_settings(config.train, len(data.labels.names), task)
    m = config.model
    tokenizer = load_tokenizer(m.name, m.revision, m.trust_remote_code)
    encoder_config = load_encoder_config(m.name, m.revision, m.trust_remote_code)
    reason = method.refusal(encoder_config, config.method)  # checked before the run too; this covers --resume
    if reason:
        raise ConfigError(f"{reason[0].upper()}{reason[1:]}.")
    settings = resolve_settings(config, model_max_length(encoder_config, tokenizer))
    config = settings.apply(config.model_copy(update={"data": data.config}))
    check_metric(settings.metric, len(data.labels.names), task)
    device = resolve_device(config.train.device)
    # Measured once (the bf16 check times this CPU), so that every process trains with the same plan.
    speed = distributed.on_main(lambda: plan_speed(config.train, device))
    distributed.on_main(lambda: config.to_yaml(run_dir / runs.CONFIG_FILE))
    long_text = config.data.long_text_options()
    check_window_settings(tokenizer, settings.max_length, long_text, data.is_pair)
    if data_summary and distributed.is_main_process():  # the summary tokenizes the training split: once is enough
        log_summary(data, tokenizer, settings.max_length, long_text)
    return PreparedRun(run_dir, config, method, data, tokenizer, device, speed, class_weights, task)


def build_model(prepared: PreparedRun) -> tuple[Any, dict[str, float]]:
    """The encoder with a fresh head sized for the labels, turned into the model to train by the method; records
    the environment and the speed features in ``env.json``."""
    config, speed = prepared.config, prepared.speed
    model = load_model_for_classification(
        config.model.name,
        prepared.data.labels.id2label,
        config.model.revision,
        config.model.trust_remote_code,
        attention_dropout=0.0 if config.train.fast_attention else None,
        attn_implementation=speed.attn_implementation,
    )
    # Which loss the model computes for itself (when no compute_loss_func replaces it), set by the task rather than
    # guessed by transformers from the labels' dtype at the first labelled forward pass.
    model.config.problem_type = prepared.task.problem_type
    model = attach_head(model, config.model)
    model = prepared.method.apply(model, config.method)  # type: ignore[misc]
    parameters = count_parameters(model)
    logger.info(
        "Method %s: %s trainable of %s parameters (%.2f%%). Device %s, precision %s, lr %g.",
        prepared.method.name,
        f"{parameters['trainable_params']:,}",
        f"{parameters['total_params']:,}",
        parameters["trainable_percent"],
        prepared.device,
        speed.precision,
        config.train.lr,
    )
    environment = _environment(prepared.device, speed.precision)
    environment["speed"] = {
        **speed.to_dict(),
        "attn_implementation": getattr(model.config, "_attn_implementation", None) or "eager",
    }
    environment["distributed"] = processes = distributed.describe(
        config.train.batch_size, config.train.gradient_accumulation_steps
    )
    distributed.on_main(lambda: runs.write_json(prepared.run_dir / runs.ENV_FILE, environment))
    logger.info("Speed features: %s", _describe_speed(environment["speed"]))
    logger.info(
        "Global batch %d: %d per device x %d process%s x %d accumulation step%s.",
        processes["global_batch_size"],
        processes["per_device_batch_size"],
        processes["world_size"],
        "es" if processes["world_size"] > 1 else "",
        processes["gradient_accumulation_steps"],
        "s" if processes["gradient_accumulation_steps"] > 1 else "",
    )
    return model, parameters


def tokenize_splits(prepared: PreparedRun, frame: pd.DataFrame, split: str) -> Any:
    """One split's token ids (cut to the max length as ``data.long_text`` says; with chunks one row per window),
    through the tokenization cache when it is on."""
    long_text = prepared.long_text
    num_labels = len(prepared.data.labels.names)
    if not prepared.speed.cache_tokenized:
        return tokenize_frame(frame, prepared.tokenizer, prepared.max_length, long_text, num_labels)
    dataset, hit = cached_tokenize(
        frame, prepared.tokenizer, prepared.max_length, long_text=long_text, num_labels=num_labels
    )
    rows = f"{len(dataset)} windows of {len(frame)} texts" if len(dataset) != len(frame) else f"{len(dataset)} rows"
    logger.info("Tokenized %s: %s (%s).", split, rows, "from cache" if hit else "cached for next time")
    return dataset


def build_trainer(
    prepared: PreparedRun,
    model: Any,
    train_set: Any,
    eval_set: Any,
    extra_callbacks: list[Any] | None = None,
) -> tuple[Any, Any]:
    """The :class:`~distiltune.training.trainer.ResumableTrainer` with the run's arguments, collator, metrics and
    callbacks, and the callback that writes ``history.jsonl``."""
    from transformers import EarlyStoppingCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    config, speed, device = prepared.config, prepared.speed, prepared.device
    t = config.train
    check_tracker(t.report_to)
    global_batch = t.batch_size * t.gradient_accumulation_steps * distributed.world_size()
    steps_per_epoch = max(1, math.ceil(len(train_set) / global_batch))
    total_steps = t.max_steps if t.max_steps > 0 else math.ceil(steps_per_epoch * t.epochs)
    metric = t.metric or prepared.task.default_metric
    eval_interval = steps_per_epoch if t.eval_strategy == "epoch" else t.eval_steps
    main_process = distributed.is_main_process()
    history = HistoryCallback(prepared.run_dir / runs.HISTORY_FILE, writes=main_process)
    progress = ConsoleProgress(
        metric,
        show_bar=main_process and _console_shows_progress(),
        console_logs=main_process and _has_console_handler(),
        columns=prepared.task.progress_metrics,
    )
    callbacks: list[Any] = [history, progress, *(extra_callbacks or [])]
    if t.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=t.early_stopping_patience))
    args = TrainingArguments(
        output_dir=str(prepared.run_dir / runs.CHECKPOINTS_DIR),
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
        bf16=speed.precision == "bf16",
        fp16=speed.precision == "fp16",
        use_cpu=device.type == "cpu",
        train_sampling_strategy="group_by_length" if speed.group_by_length else "random",
        dataloader_num_workers=speed.dataloader_workers,
        dataloader_pin_memory=speed.pin_memory,
        optim=speed.optimizer,
        # The filter tests every step's loss for NaN/inf on the CPU, so the CPU waits for the GPU every step.
        logging_nan_inf_filter=not speed.async_steps,
        torch_compile=speed.compile,
        full_determinism=False,  # train.deterministic is handled by training.reproducibility.deterministic_mode
        report_to=t.report_to,
        run_name=prepared.run_dir.name,
        disable_tqdm=True,  # ConsoleProgress shows one bar and one line per evaluation instead
        log_level_replica="error",  # the other processes of a multi-process run stay quiet
        # The classification losses are means over each process's batch: they take **kwargs but ignore
        # num_items_in_batch, so the Trainer's cross-device token averaging would multiply loss and gradients by
        # the number of processes. Off, DDP averages the per-process means (no effect with one process).
        average_tokens_across_devices=False,
        save_only_model=False,
    )
    tokenizer = prepared.tokenizer
    windows = DOCUMENT_COLUMN in getattr(eval_set, "column_names", [])
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
        compute_metrics=prepared.task.compute_metrics(
            list(model.config.id2label.values()),
            documents_of(eval_set, prepared.long_text.aggregation) if windows else None,
        ),
        # The model's own loss unless the run changes it. The adapter also divides correctly under gradient
        # accumulation (transformers 5.23 does not for sequence classifiers; training.losses), but runs without
        # either keep the model's loss so they stay bit-identical to runs trained before it existed.
        compute_loss_func=make_compute_loss(prepared.class_weights, t.loss, t.focal_gamma, prepared.task)
        if _needs_loss_adapter(prepared)
        else None,
        callbacks=callbacks,
        length_group_batches=speed.length_group_batches,
        # Windows are scored per document, by the evaluation set's row order: evaluate in that order.
        sequential_evaluation=windows,
    )
    # Without its bars the Trainer prints every log dict; ConsoleProgress, history.jsonl and train.log say it better.
    trainer.remove_callback(PrinterCallback)
    attach_tracking(trainer, config.to_dict(), t.report_to, prepared.run_dir)
    return trainer, history


def _needs_loss_adapter(prepared: PreparedRun) -> bool:
    """Runs other than single-label ones always train with their task's loss: a model's own loss for its
    ``problem_type`` differs between architectures and peft's wrappers, the task's does not."""
    t = prepared.config.train
    return (
        prepared.class_weights is not None
        or t.loss != "cross_entropy"
        or t.gradient_accumulation_steps > 1
        or prepared.task.name != SINGLE_LABEL
    )


def documents_of(eval_set: Any, aggregation: str) -> Any:
    """``(window logits, window labels) -> (document logits, document labels)`` for an evaluation set read in
    windows (its ``document`` column), so that the Trainer's evaluation scores documents as the final one does."""
    document_index = np.asarray(eval_set[DOCUMENT_COLUMN], dtype=np.int64)
    num_documents = int(document_index.max()) + 1 if len(document_index) else 0

    def to_documents(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(logits) != len(document_index):
            raise ValueError(f"the evaluation returned {len(logits)} rows for {len(document_index)} windows")
        return (
            aggregate_windows(logits, document_index, aggregation, num_documents),
            document_labels(labels, document_index, num_documents),
        )

    return to_documents


@dataclass(frozen=True)
class FitResult:
    seconds: float
    samples_per_second: float | None
    peak_memory: dict[str, Any]


def fit(trainer: Any, method: Method, checkpoint: Path | None, device: Any, report_to: str = "none") -> FitResult:
    """Train (resuming from ``checkpoint``), or only evaluate for a method that does not train; a tracker's run is
    closed as failed if it raises."""
    started = time.perf_counter()
    samples_per_second = None
    with PeakMemory(device) as peak_memory, tracker_run_closed_on_error(report_to):
        if method.trains:
            output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
            samples_per_second = output.metrics.get("train_samples_per_second")
        else:
            trainer.evaluate()
    return FitResult(time.perf_counter() - started, samples_per_second, peak_memory.as_dict())


def save_model(prepared: PreparedRun, model: Any) -> Path:
    """The best model into ``model/``: the method's weights, the tokenizer, ``labels.json`` and the method's extra
    outputs (LoRA's merged model)."""
    method, config, data = prepared.method, prepared.config, prepared.data
    model_dir = prepared.run_dir / runs.MODEL_DIR
    model_dir.mkdir()
    method.save(model, model_dir)  # type: ignore[misc]
    prepared.tokenizer.save_pretrained(model_dir)
    task = prepared.task.name if prepared.task.name != SINGLE_LABEL else None
    runs.write_model_info(model_dir, data.labels.id2label, prepared.max_length, data.is_pair, method.name, task)
    if method.export is not None:
        method.export(model, model_dir, config.method)
    return model_dir


# --- helpers ----------------------------------------------------------------------------------------


def _console_handlers() -> list[logging.Handler]:
    """Handlers that print distiltune's records somewhere other than a file: its own, and its ancestors' while
    records propagate to them (a user's ``logging.basicConfig``)."""
    found: list[logging.Handler] = []
    log: logging.Logger | None = logging.getLogger("distiltune")
    while log is not None:
        found += [h for h in log.handlers if not isinstance(h, logging.FileHandler)]
        log = log.parent if log.propagate else None
    return found


def _has_console_handler() -> bool:
    return bool(_console_handlers())


def _console_shows_progress() -> bool:
    """A progress bar only where distiltune's console shows INFO lines: not under ``train --quiet``.

    With no console handler (library use) the bar stays, as with a plain Trainer.
    """
    consoles = _console_handlers()
    return not consoles or any(h.level <= logging.INFO for h in consoles)


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


def best_row(rows: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """The history row the Trainer kept as best for ``metric``."""
    key = "eval_loss" if metric == "loss" else metric
    scored = [row for row in rows if row.get(key) is not None]
    if not scored:
        return None
    # Ties go to the earliest row, as in the Trainer (it only replaces the best on strict improvement).
    return (min if metric == "loss" else max)(scored, key=lambda row: row[key])


def log_summary(data: PreparedData, tokenizer: Any, max_length: int, long_text: LongTextOptions | None = None) -> None:
    """Rows per split, label balance and, for the training split, token-length percentiles and truncation under the
    run's long-text reading. Warns when more than a fifth of the training texts lose tokens (naming
    ``data.long_text``) and when the largest label has more than 5x the training rows of the smallest (naming
    ``train.class_weights``, ``train.loss`` and ``--tune-threshold``)."""
    logger.info(
        "Dataset %s (%s): %d labels %s",
        data.config.dataset,
        ("sentence pairs" if data.is_pair else "single text") + (", multi-label" if data.multi_label else ""),
        len(data.labels.names),
        data.labels.names,
    )
    hint = None
    for split, frame in data.splits().items():
        if data.multi_label:
            balance = describe_label_sets(frame["label"].tolist(), data.labels.names)
        else:
            counts = frame["label"].value_counts().reindex(range(len(data.labels.names)), fill_value=0)
            balance = ", ".join(f"{data.labels.names[i]} {100 * c / len(frame):.0f}%" for i, c in counts.items())
        length_text = ""
        if split == "train" and len(frame):
            pairs = frame["text_pair"].tolist() if "text_pair" in frame.columns else None
            summary = summarize_lengths(tokenizer, frame["text"].tolist(), pairs, max_length, long_text)
            length_text = f"; {summary.describe()}"
            hint = summary.hint()
        logger.info("  %-10s %6d rows; %s%s", split, len(frame), balance, length_text)
    if hint:
        logger.warning("%s", hint)
    task = task_for(data)
    counts = task.label_counts(data.train["label"], len(data.labels.names))
    imbalance = imbalance_warning(counts, data.labels.names, thresholds_tunable=data.multi_label or None)
    if imbalance:
        logger.warning("%s", imbalance)


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
        # What train.deterministic changes: torch's deterministic-kernel mode for the length of the run.
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


__all__ = [
    "FitResult",
    "PreparedRun",
    "best_row",
    "build_model",
    "build_trainer",
    "fit",
    "log_summary",
    "prepare_run",
    "run_in",
    "save_model",
    "tokenize_splits",
    "train",
]
