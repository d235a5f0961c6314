"""Multi-label on GoEmotions: distiltune's defaults against the strong peer's recipe and TF-IDF, on the same rows.

The plan below is fixed before any data (issue 30); the results file keeps it under ``plan``.

Data. ``../shared/data/goemotions``: the official splits (train 43,410 / dev 5,426 / test 5,427 Reddit comments, 28
labels, about 16% of rows with several). distiltune reads the folder as a user would, with flags
(``data.column_names=[text,labels,id]``, ``data.label_names_file=emotions.txt``; the ``goemotions`` preset names the
hub copy, which is unreachable offline). The peer and TF-IDF get exactly the rows distiltune parsed.

Settings. The packaged all-MiniLM-L6-v2 (``--model minilm``), max length 64 (the goemotions preset's; the share of
training texts it cuts is recorded), distiltune's defaults otherwise: 3 epochs, batch 16, lr 3e-5, best checkpoint by
validation macro-F1. The peer gets the same encoder, max length, epochs, batch size and learning rate.

Arms, per seed, in this order (each seed runs every arm before the next seed starts, so the arms share the machine's
state):
- ``distiltune``: ``distiltune train`` with the defaults plus ``--tune-threshold``. One training, two decisions,
  both scored on test from that run: ``distiltune_0.5`` (every label at 0.5: the run's ``before_threshold`` metrics)
  and ``distiltune_tuned`` (per-label thresholds tuned on dev: the run's final metrics).
- ``peer``: the recipe of the Hugging Face multi-label tutorials, written as a knowledgeable user writes it with the
  same libraries: ``AutoModelForSequenceClassification(problem_type="multi_label_classification")`` (BCE with
  logits), ``DataCollatorWithPadding``, ``train_sampling_strategy="group_by_length"``, fused AdamW, bf16 where the
  CPU has it, evaluation every epoch with ``load_best_model_at_end`` on validation micro-F1 (the tutorials' metric),
  a 0.5 threshold on each sigmoid.
- ``tfidf``: ``distiltune train --method tfidf`` (one-vs-rest logistic regression), threshold 0.5.

Seeds 42, 43, 44 (three: the issue's minimum on a CPU).

Reported per arm: test macro-F1 and micro-F1 (mean ± sd over seeds), training seconds (one sitting, arms taking
turns), and for seed 42's distiltune run the int8 ONNX export's per-label agreement with PyTorch.

Statistics (paired per seed; 95% t-interval with 2 degrees of freedom, t = 4.303):
- "at least 3 points of macro-F1 over the peer" is claimed only if the mean of ``distiltune_tuned - peer`` is at least
  3.0 points and the interval's lower bound is above 0; otherwise the file says which part failed.
- The issue's target, macro-F1 >= 0.46 on test, is met if the mean of ``distiltune_tuned`` is at least 0.460.
- Where a gain comes from: ``distiltune_0.5 - peer`` (training: checkpoint selection by macro-F1, distiltune's
  speed settings) and ``distiltune_tuned - distiltune_0.5`` (the thresholds), each with its interval.
- Default for multi-label runs: tuned per-label thresholds become the default (``train.tune_threshold`` on when a run
  is multi-label) only if ``distiltune_tuned - distiltune_0.5`` in macro-F1 has its lower bound above 0 and the mean
  micro-F1 does not fall by more than 1 point; else the default stays 0.5 and the docs give the measured effect.

Run from the repository root (about 2 hours on 2 CPU cores)::

    .venv/bin/python benchmarks/multilabel.py --data ../shared/data/goemotions
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import dated_result_path  # noqa: E402  (a sibling script, not a package)
from throughput import (  # noqa: E402
    PEER_ATTENTION,
    PEER_OPTIMIZER,
    PEER_SAMPLING,
    REPO_ROOT,
    hardware_summary,
    peer_precision,
    peer_recipe,
)

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "goemotions"
SEEDS = (42, 43, 44)
ARMS = ("distiltune_0.5", "distiltune_tuned", "peer", "tfidf")
#: t quantile for a two-sided 95% interval with 2 degrees of freedom (3 seeds); others from scipy.
T_95 = {2: 4.302653}

PLAN = {
    "data": "goemotions official splits: train 43,410 / dev 5,426 / test 5,427, 28 labels",
    "model": "minilm (packaged all-MiniLM-L6-v2)",
    "settings": "max length 64, 3 epochs, batch 16, lr 3e-5 (distiltune defaults; the peer gets the same)",
    "arms": list(ARMS),
    "seeds": list(SEEDS),
    "statistics": "paired per-seed differences, 95% t-interval (df = seeds - 1)",
    "claims": {
        "beats_peer_by_3_points": "mean(distiltune_tuned - peer) macro-F1 >= 3.0 points and lower bound > 0",
        "target_0.46": "mean macro-F1 of distiltune_tuned >= 0.460",
        "tuned_thresholds_default": "lower bound of (distiltune_tuned - distiltune_0.5) macro-F1 > 0 and mean "
        "micro-F1 drop <= 1 point",
    },
}


def distiltune_overrides(args: argparse.Namespace, seed: int, work: Path, method: str = "full") -> dict[str, Any]:
    return {
        "data.dataset": str(args.data),
        "data.column_names": ["text", "labels", "id"],
        "data.label_names_file": "emotions.txt",
        "data.multi_label": True,
        "data.max_length": args.max_length,
        "model.name": args.model,
        "method.name": method,
        "train.seed": seed,
        "train.tune_threshold": method != "tfidf",
        "run.output_dir": str(work),
        "run.name": f"{method}_seed{seed}",
        **({"data.max_train_samples": args.max_train_samples} if args.max_train_samples else {}),
        **({"data.max_eval_samples": args.max_eval_samples} if args.max_eval_samples else {}),
        **({"train.epochs": args.epochs} if args.epochs else {}),
    }


def run_distiltune(args: argparse.Namespace, seed: int, work: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """distiltune's defaults with --tune-threshold: the two decisions of one run (0.5 and tuned thresholds)."""
    import distiltune

    started = time.perf_counter()
    run = distiltune.train(None, distiltune_overrides(args, seed, work))
    wall = time.perf_counter() - started
    metrics = run.metrics
    test = metrics["test"]
    before = test["before_threshold"]
    common = {"train_seconds": metrics["train_seconds"], "wall_seconds": round(wall, 1), "run": run.dir.name}
    tuned = {"f1_macro": test["f1_macro"], "f1_micro": test["f1_micro"], **common}
    at_half = {"f1_macro": before["f1_macro"], "f1_micro": before["f1_micro"], **common}
    tuned["tuned_labels"] = metrics["threshold"]["tuned_labels"]
    return at_half, tuned, run.dir


def run_tfidf(args: argparse.Namespace, seed: int, work: Path) -> dict[str, Any]:
    import distiltune

    run = distiltune.train(None, distiltune_overrides(args, seed, work, method="tfidf"))
    test = run.metrics["test"]
    return {"f1_macro": test["f1_macro"], "f1_micro": test["f1_micro"], "train_seconds": run.metrics["train_seconds"]}


def run_peer(args: argparse.Namespace, seed: int, work: Path) -> dict[str, Any]:
    """The Hugging Face multi-label tutorial's recipe with the strong peer's speed settings, on the rows distiltune
    parsed; test macro/micro-F1 at 0.5 from ``Trainer.predict`` (its predictions compared with the ``label_ids`` it
    returns: length grouping also reorders the predicted rows)."""
    import datasets
    import transformers
    from sklearn.metrics import f1_score
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from distiltune.data import load_data
    from distiltune.data.config import DataConfig
    from distiltune.data.multilabel import multi_hot
    from distiltune.modeling import resolve_model_name

    overrides = distiltune_overrides(args, seed, work)
    data_config = DataConfig(**{key[5:]: value for key, value in overrides.items() if key.startswith("data.")})
    data = load_data(data_config, seed=seed)
    names = data.labels.names
    path = resolve_model_name(args.model)
    transformers.set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(path)

    def encode(frame: Any) -> Any:
        encoded = tokenizer(frame["text"].tolist(), truncation=True, max_length=args.max_length)
        targets = multi_hot(frame["label"].tolist(), len(names))
        return datasets.Dataset.from_dict({**encoded, "labels": targets.tolist()})

    train_set, validation_set, test_set = encode(data.train), encode(data.validation), encode(data.test)
    model = AutoModelForSequenceClassification.from_pretrained(
        path,
        num_labels=len(names),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(names)),
        label2id={name: i for i, name in enumerate(names)},
        attn_implementation=PEER_ATTENTION,
    )

    def compute_metrics(prediction: Any) -> dict[str, float]:
        decided = np.asarray(prediction.predictions) > 0  # sigmoid(z) > 0.5
        gold = np.asarray(prediction.label_ids) > 0.5
        return {"f1": f1_score(gold, decided, average="micro", zero_division=0)}

    device = "cpu"
    precision = peer_precision(device)
    # throughput.peer_trainer's settings, plus the tutorial's evaluation every epoch and best-epoch selection.
    arguments = TrainingArguments(
        output_dir=str(work / f"peer_seed{seed}"),
        per_device_train_batch_size=16,
        per_device_eval_batch_size=64,
        learning_rate=3e-5,
        weight_decay=0.01,
        num_train_epochs=args.epochs or 3,
        seed=seed,
        report_to="none",
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="f1",
        logging_steps=200,
        use_cpu=True,
        disable_tqdm=True,
        train_sampling_strategy=PEER_SAMPLING,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        optim=PEER_OPTIMIZER,
    )
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=train_set,
        eval_dataset=validation_set,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    output = trainer.predict(test_set)
    decided = np.asarray(output.predictions) > 0
    gold = np.asarray(output.label_ids) > 0.5
    return {
        "f1_macro": float(f1_score(gold, decided, average="macro", zero_division=0)),
        "f1_micro": float(f1_score(gold, decided, average="micro", zero_division=0)),
        "train_seconds": round(seconds, 2),
        "precision": precision,
        "recipe": peer_recipe(trainer),
    }


def int8_agreement(run_dir: Path) -> dict[str, Any]:
    from distiltune.export import export_run

    report = export_run(run_dir, quantize="int8", min_agreement=0.0).report
    keys = ("samples", "agreement", "agreement_interval", "label_agreement", "max_probability_difference")
    return {key: report.get(key) for key in keys}


def interval(differences: list[float]) -> dict[str, Any]:
    """Mean, sd and the two-sided 95% t-interval of paired differences (points)."""
    n = len(differences)
    mean = statistics.fmean(differences)
    if n < 2:
        return {"mean": mean, "n": n}
    sd = statistics.stdev(differences)
    if n - 1 in T_95:
        t = T_95[n - 1]
    else:
        from scipy.stats import t as student

        t = float(student.ppf(0.975, n - 1))
    half = t * sd / math.sqrt(n)
    return {"mean": mean, "sd": sd, "n": n, "low": mean - half, "high": mean + half}


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    seeds = sorted(results["seeds"], key=int)
    per_arm: dict[str, Any] = {}
    for arm in ARMS:
        for metric in ("f1_macro", "f1_micro"):
            values = [results["seeds"][seed][arm][metric] for seed in seeds if arm in results["seeds"][seed]]
            if values:
                per_arm.setdefault(arm, {})[metric] = {
                    "mean": statistics.fmean(values),
                    "sd": statistics.stdev(values) if len(values) > 1 else None,
                    "values": values,
                }
    complete = [seed for seed in seeds if all(arm in results["seeds"][seed] for arm in ARMS)]

    def paired(a: str, b: str, metric: str) -> dict[str, Any]:
        return interval([100 * (results["seeds"][s][a][metric] - results["seeds"][s][b][metric]) for s in complete])

    out: dict[str, Any] = {"per_arm": per_arm, "complete_seeds": complete}
    if len(complete) >= 2:
        versus_peer = paired("distiltune_tuned", "peer", "f1_macro")
        training = paired("distiltune_0.5", "peer", "f1_macro")
        thresholds = paired("distiltune_tuned", "distiltune_0.5", "f1_macro")
        micro = paired("distiltune_tuned", "distiltune_0.5", "f1_micro")
        tuned_mean = per_arm["distiltune_tuned"]["f1_macro"]["mean"]
        out["differences_points"] = {
            "distiltune_tuned - peer (macro-F1)": versus_peer,
            "distiltune_0.5 - peer (macro-F1)": training,
            "distiltune_tuned - distiltune_0.5 (macro-F1)": thresholds,
            "distiltune_tuned - distiltune_0.5 (micro-F1)": micro,
        }
        out["verdicts"] = {
            "beats_peer_by_3_points": versus_peer["mean"] >= 3.0 and versus_peer["low"] > 0,
            "target_0.46": tuned_mean >= 0.46,
            "tuned_thresholds_default": thresholds["low"] > 0 and micro["mean"] >= -1.0,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--epochs", type=float, default=None, help="Smoke runs only (the plan: the default, 3).")
    parser.add_argument("--max-train-samples", type=int, default=None, help="Smoke runs only.")
    parser.add_argument("--max-eval-samples", type=int, default=None, help="Smoke runs only.")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=None, help="Results file; an existing one is continued.")
    args = parser.parse_args()
    output = args.output or dated_result_path("multilabel_goemotions", RESULTS_DIR)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="multilabel-"))
    results: dict[str, Any] = (
        json.loads(output.read_text())
        if output.is_file()
        else {"plan": PLAN, "hardware": hardware_summary("cpu"), "args": {}, "seeds": {}}
    )
    results["args"] = {key: str(value) for key, value in vars(args).items()}
    print(json.dumps(PLAN, indent=2))
    for seed in [int(s) for s in args.seeds.split(",")]:
        done = results["seeds"].setdefault(str(seed), {})
        if not {"distiltune_0.5", "distiltune_tuned"} <= set(done):
            done["distiltune_0.5"], done["distiltune_tuned"], run_dir = run_distiltune(args, seed, work)
            if seed == SEEDS[0] and "int8_export" not in results:
                results["int8_export"] = int8_agreement(run_dir)
            _save(output, results)
        if "peer" not in done:
            done["peer"] = run_peer(args, seed, work)
            _save(output, results)
        if "tfidf" not in done:
            done["tfidf"] = run_tfidf(args, seed, work)
            _save(output, results)
        print(json.dumps({seed: {arm: {k: done[arm][k] for k in ("f1_macro", "f1_micro")} for arm in done}}))
    results["summary"] = summarize(results)
    _save(output, results)
    print(json.dumps(results["summary"], indent=2))


def _save(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    print(f"Saved {path}")


if __name__ == "__main__":
    main()
