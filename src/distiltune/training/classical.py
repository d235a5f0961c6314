"""Runs of methods that do not train through the Trainer (``Method.fit``: the TF-IDF baseline).

They share everything around the fit with encoder runs: the data, the resolved config, the run directory, the
evaluation of the splits and the final files.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from distiltune import runs
from distiltune.config import Config, resolve_settings
from distiltune.data import PreparedData
from distiltune.data.fingerprint import splits_fingerprint
from distiltune.methods import Method
from distiltune.tasks.base import SINGLE_LABEL, task_for
from distiltune.training.memory import PeakMemory
from distiltune.training.run import (
    Run,
    check_calibration_settings,
    check_metric,
    evaluate_splits,
    finish_run,
    run_record,
    write_calibration,
)

logger = logging.getLogger("distiltune")


def fit_without_trainer(run_dir: Path, config: Config, method: Method, data: PreparedData) -> Run:
    """Fit ``method`` on the training split, save it and evaluate it like an encoder run."""
    if method.fit is None:
        raise TypeError(f"method {method.name} trains an encoder; train it through the Trainer")
    task = task_for(config.model_copy(update={"data": data.config}))  # multi-label is resolved from the data
    check_calibration_settings(config.train, len(data.labels.names), task)
    settings = resolve_settings(config, model_limit=None, uses_encoder=False)
    config = settings.apply(config.model_copy(update={"data": data.config}))
    check_metric(settings.metric, len(data.labels.names), task)
    _warn_unused(config, method)
    config.to_yaml(run_dir / runs.CONFIG_FILE)
    names = data.labels.names
    logger.info(
        "Dataset %s: %d train, %d validation rows; labels %s",
        config.data.dataset,
        len(data.train),
        len(data.validation),
        names,
    )
    started = time.perf_counter()
    with PeakMemory("cpu") as peak_memory:  # process RSS, as for encoder runs on CPU
        fitted = method.fit(data.train, len(names), config.method, config.train.seed)
    train_seconds = time.perf_counter() - started
    runs.write_json(run_dir / runs.ENV_FILE, fitted.environment())
    facts = fitted.run_facts()
    logger.info("%s: fitted in %.2f s (%s).", method.name, train_seconds, _describe(facts))

    model_dir = run_dir / runs.MODEL_DIR
    model_dir.mkdir()
    fitted.save(model_dir)
    kind = task.name if task.name != SINGLE_LABEL else None
    runs.write_model_info(model_dir, data.labels.id2label, config.data.max_length, data.is_pair, method.name, kind)

    evaluation = evaluate_splits(fitted.predict_logits, data, config.train, task)
    write_calibration(model_dir, evaluation)
    train_pairs = data.train["text_pair"].tolist() if data.is_pair else None
    train_logits = fitted.predict_logits(data.train["text"].tolist(), train_pairs)
    train_probabilities, train_predicted = task.predict(train_logits)
    train_gold = data.train["label"].to_numpy()
    validation = evaluation.splits["validation"]
    history_row = {
        "epoch": 1.0,
        "step": 1,
        "train_loss": task.nll(train_probabilities, train_gold, len(names)),
        # As for encoder runs, the accuracy on the data it trained on, next to the validation accuracy.
        "train_accuracy": float(task.agreement(train_predicted, train_gold).mean()),
        "eval_loss": validation["loss"],
        **{
            k: v
            for k, v in validation.items()
            if isinstance(v, float) and k not in ("loss", "eval_samples_per_second")
        },
    }
    runs.write_jsonl(run_dir / runs.HISTORY_FILE, [history_row])
    record = run_record(
        evaluation,
        method=method.name,
        model=config.model.name,
        dataset=config.data.dataset,
        metric_for_best=settings.metric,
        best_step=1,
        best_epoch=1.0,
        train_seconds=round(train_seconds, 3),
        train_samples_per_second=round(len(data.train) / train_seconds, 2) if train_seconds > 0 else None,
        train_rows=len(data.train),
        data_fingerprint=splits_fingerprint(data.splits()),
        # The method's facts name its model (tfidf), parameters, features, device and precision.
        method_facts=facts,
        peak_memory=peak_memory.as_dict(),
    )
    return finish_run(run_dir, config, record, evaluation.predictions, [history_row])


def _warn_unused(config: Config, method: Method) -> None:
    """The settings a method outside the Trainer does not read: said once, not refused (a comparison shares them
    with the encoder methods)."""
    t = config.train
    unused = [
        key
        for key, is_set in (
            ("train.class_weights", not (isinstance(t.class_weights, str) and t.class_weights.lower() == "none")),
            ("train.loss", t.loss != "cross_entropy"),
            ("data.long_text", config.data.long_text not in (None, "head")),
        )
        if is_set
    ]
    if unused:
        logger.warning(
            "%s: the %s method reads whole texts with its own loss and ignores them.", ", ".join(unused), method.name
        )


def _describe(facts: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in facts.items() if key.endswith(("features", "params")))


__all__ = ["fit_without_trainer"]
