"""Multi-process training on the CPU: ``torchrun --nproc_per_node 2`` (gloo) trains full, LoRA and prompt tuning, a
full run read in windows (chunks), head and tfidf in one launch; each writes exactly one complete run directory, and
the first four match a single-process run with the same global batch and seed; predictions on an odd-sized split
come back complete and in order; a signal that reaches one process stops both at the same checkpoint; a run killed
mid-checkpoint resumes (``distiltune train --nproc 2 --resume``) to exactly the uninterrupted run; ``accelerate
launch -m distiltune train`` completes a run. Plus the pieces in-process: launch commands, shards, the sampler under
accelerate's batch sharding, the world-size check, the resume command of a run on several machines.

Three launches in all (they dominate the time: every process imports torch and transformers).

Tolerances against the single-process run. The processes add the same gradients up in another order, so training
losses and the final evaluation's probabilities and log loss agree to float rounding (``TOLERANCE``; measured
1e-4 at most). The Trainer's evaluation during training (``history.jsonl``'s eval_loss) pads the last batch of each
process with rows from the start of the split, and the mean loss of that batch counts them
(``TRAINER_EVAL_LOSS_TOLERANCE``; measured 2e-3); its accuracy and F1 are computed on exactly the 101 gathered rows.
Rates may differ by ``RATE_TOLERANCE`` (two rows of 101: a near-tie decided by rounding); measured: equal.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from make_fixtures import sentiment_rows

import distiltune
from distiltune import runs
from distiltune.cli import main
from distiltune.errors import ConfigError, RunError
from distiltune.runs import read_status
from distiltune.training import distributed
from distiltune.training.checkpoints import (
    LOOP_STATE_FILE,
    TRAINER_STATE_FILE,
    checkpoint_world_size,
    is_complete_checkpoint,
    newest_complete_checkpoint,
)
from distiltune.training.resume import check_world_size, prepare_resume
from distiltune.training.trainer import EpochSeededSampler, ResumableTrainer

SOURCE = Path(distiltune.__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name("distributed_driver.py")
PROCESSES = 2
PER_DEVICE_BATCH = 4
TOLERANCE = 1e-3
TRAINER_EVAL_LOSS_TOLERANCE = 1e-2
RATE_TOLERANCE = 0.02
#: method -> (learning rate, seed, epochs): full learns within its 24 steps with this seed; LoRA and prompt tuning
#: move their losses in 12. Dropout is off everywhere (the encoder below, LoRA's own): each process draws its own
#: masks, so with dropout the runs could not match.
METHODS = {"full": ("0.02", "1", 4), "lora": ("0.01", "42", 2), "prompt": ("0.1", "42", 2)}
#: The full run again, on the same reviews written twice (12 words) read in windows of max length 8 (6 words): each
#: review is several windows. The Trainer's evaluation scores documents from their windows by position, so it must
#: see them in the split's order under length grouping (the default) on every process too.
CHUNKS = {"data.long_text": "chunks", "data.max_length": "8", "train.lr": "0.005"}  # 0.02 collapses on windows
#: Runs of the launch besides METHODS: name -> (method, overrides). head trains the classifier alone; tfidf has no
#: Trainer, so the main process fits it while the other waits.
OTHER_RUNS: dict[str, tuple[str, dict[str, str]]] = {
    "chunks": ("full", CHUNKS),
    "head": ("head", {}),
    "tfidf": ("tfidf", {}),
}
#: The runs of the launch in order, before the interrupted and the crashed one.
RUNS = [*METHODS, *OTHER_RUNS]
#: The runs also trained in one process, to compare with.
COMPARED = [*METHODS, "chunks"]
TIMING_KEYS = {
    "train_seconds",
    "train_samples_per_second",
    "eval_samples_per_second",
    "peak_memory_mb",
    "peak_memory_increase_mb",
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Path:
    """A dropout-free copy of the tiny encoder, and 48 training rows (6 steps of 8 per epoch) with 101 validation
    rows (odd: the last evaluation batches are uneven across the processes)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    root = tmp_path_factory.mktemp("distributed")
    encoder = root / "encoder"
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_model, dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0
    )
    model.save_pretrained(encoder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(encoder)
    rows = sentiment_rows(149, seed=7)
    doubled = [{**row, "review": f"{row['review']} {row['review']}"} for row in rows]
    for folder, texts in (("data", rows), ("long_data", doubled)):
        (root / folder).mkdir()
        for split, part in (("train", texts[:48]), ("validation", texts[48:])):
            with (root / folder / f"{split}.csv").open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=["review", "sentiment"])
                writer.writeheader()
                writer.writerows(part)
    return root


def overrides(workspace: Path, name: str, batch_size: int) -> dict[str, str]:
    """Evaluation and checkpoint every 4 steps, the loss logged every 3: a checkpoint can hold losses not yet
    logged (each process its own). ``name``: a method of METHODS, or one of OTHER_RUNS."""
    method, extra = OTHER_RUNS.get(name, (name, {}))
    lr, seed, epochs = METHODS.get(method, METHODS["full"])
    values = {
        "model.name": str(workspace / "encoder"),
        "data.dataset": str(workspace / "data"),
        "data.text_column": "review",
        "data.label_column": "sentiment",
        "data.max_length": "16",
        "method.name": method,
        "train.epochs": str(epochs),
        "train.batch_size": str(batch_size),
        "train.lr": lr,
        "train.seed": seed,
        "train.warmup_fraction": "0",
        "train.precision": "fp32",
        "train.eval_strategy": "steps",
        "train.eval_steps": "4",
        "train.logging_steps": "3",
    }
    if method == "lora":
        values["method.dropout"] = "0"
    if name == "chunks":
        values["data.dataset"] = str(workspace / "long_data")
    return values | extra


def cli_args(values: dict[str, str], output_dir: Path, *extra: str) -> list[str]:
    args = ["--output-dir", str(output_dir), *extra]
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    return args


def launch_environment() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SOURCE), os.environ.get("PYTHONPATH", "")]),
        "GLOO_SOCKET_IFNAME": "lo",  # as accelerate's own CPU tests: gloo on the loopback interface
        "OMP_NUM_THREADS": "1",
    }


def rank_logs(log_dir: Path, rank: int) -> str:
    """What process ``rank`` printed (torchrun --redirects 3 puts each process's stdout/stderr in files)."""
    return "".join(path.read_text() for path in sorted(log_dir.rglob(f"attempt_*/{rank}/std*.log")))


@pytest.fixture(scope="module")
def launch(workspace: Path) -> dict[str, object]:
    """One torchrun launch: the three methods; the full run reading windows; head and tfidf; a full run that one
    process gets SIGTERM in; a full run killed while writing its second checkpoint."""
    output = workspace / "ddp"
    plan = {
        "runs": [cli_args(overrides(workspace, name, PER_DEVICE_BATCH), output / name) for name in RUNS],
        "codes": str(workspace / "codes.json"),
        "interrupt": cli_args(overrides(workspace, "full", PER_DEVICE_BATCH), output / "interrupt", "--name", "run"),
        "crash": cli_args(overrides(workspace, "full", PER_DEVICE_BATCH), output / "crash", "--name", "crashed"),
    }
    (workspace / "plan.json").write_text(json.dumps(plan))
    log_dir = workspace / "logs"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(PROCESSES),
        "--log-dir",
        str(log_dir),
        "--redirects",
        "3",
        str(DRIVER),
        str(workspace / "plan.json"),
    ]
    done = subprocess.run(command, env=launch_environment(), capture_output=True, text=True, timeout=600)
    return {"output": output, "log_dir": log_dir, "returncode": done.returncode, "stderr": done.stderr}


@pytest.fixture(scope="module")
def single_process(workspace: Path) -> dict[str, distiltune.Run]:
    """The same runs in one process with the global batch (4 per device x 2 processes)."""
    return {
        name: distiltune.train(
            None,
            [
                f"{key}={value}"
                for key, value in {
                    **overrides(workspace, name, PER_DEVICE_BATCH * PROCESSES),
                    "run.output_dir": str(workspace / "single" / name),
                }.items()
            ],
        )
        for name in COMPARED
    }


def only_run_dir(output: Path) -> Path:
    (run_dir,) = list(output.iterdir())  # exactly one: the processes shared the one the main process created
    return run_dir


def test_the_launch_trains_every_method_into_one_complete_run_directory(launch: dict, workspace: Path) -> None:
    codes = json.loads((workspace / "codes.json").read_text())
    assert codes[: len(RUNS)] == [0] * len(RUNS), rank_logs(launch["log_dir"], 0)[-3000:]
    for method, (_, _, epochs) in METHODS.items():
        run_dir = only_run_dir(launch["output"] / method)
        assert runs.is_completed(run_dir), method
        assert read_status(run_dir)["status"] == "completed"
        processes = runs.read_json(run_dir / runs.ENV_FILE)["distributed"]
        assert processes["world_size"] == PROCESSES and processes["backend"] == "gloo"
        assert processes["per_device_batch_size"] == PER_DEVICE_BATCH
        assert processes["global_batch_size"] == PER_DEVICE_BATCH * PROCESSES
        assert "Global batch 8: 4 per device x 2 processes" in (run_dir / runs.LOG_FILE).read_text()
        # One history row per evaluation (a row per process would repeat them).
        steps = [row["step"] for row in runs.read_jsonl(run_dir / runs.HISTORY_FILE)]
        assert steps == list(range(4, 6 * epochs + 1, 4))
        checkpoint = newest_complete_checkpoint(run_dir / runs.CHECKPOINTS_DIR)
        assert checkpoint is not None and checkpoint_world_size(checkpoint) == PROCESSES
        assert {"rng_state_0.pth", "rng_state_1.pth"} <= {path.name for path in checkpoint.iterdir()}


def test_only_the_main_process_prints(launch: dict) -> None:
    main_output, other_output = rank_logs(launch["log_dir"], 0), rank_logs(launch["log_dir"], 1)
    assert "Run directory:" in main_output and "Global batch" in main_output
    # torch's own C++ warnings may appear on every process; nothing of distiltune's or the Trainer's does.
    for mark in ("Run directory", "INFO", "WARNING ", "error:", "accuracy", "it/s", "Saved the best model"):
        assert mark not in other_output, (mark, other_output[-2000:])


@pytest.mark.parametrize("method", list(METHODS))
def test_two_processes_match_one_process_with_the_same_global_batch(
    method: str, launch: dict, single_process: dict
) -> None:
    ddp_dir, single = only_run_dir(launch["output"] / method), single_process[method]
    ddp_history = runs.read_jsonl(ddp_dir / runs.HISTORY_FILE)
    assert len(ddp_history) == len(single.history)
    # The comparison means something: the training loss moved by far more than the tolerance.
    train_losses = [row["train_loss"] for row in single.history]
    assert max(train_losses) - min(train_losses) > 10 * TOLERANCE
    for ddp_row, row in zip(ddp_history, single.history, strict=True):
        assert ddp_row["step"] == row["step"]
        assert ddp_row["train_loss"] == pytest.approx(row["train_loss"], abs=TOLERANCE)
        assert ddp_row["eval_loss"] == pytest.approx(row["eval_loss"], abs=TRAINER_EVAL_LOSS_TOLERANCE)
        assert ddp_row["accuracy"] == pytest.approx(row["accuracy"], abs=RATE_TOLERANCE)
        # Counted by each process on its own batches, added up over the processes at every evaluation.
        assert ddp_row["train_accuracy"] == pytest.approx(row["train_accuracy"], abs=RATE_TOLERANCE)
    ddp_metrics = runs.read_json(ddp_dir / runs.METRICS_FILE)
    assert ddp_metrics["best_step"] == single.metrics["best_step"]
    for key in ("accuracy", "f1_macro", "precision_macro", "recall_macro"):
        assert ddp_metrics["validation"][key] == pytest.approx(single.metrics["validation"][key], abs=RATE_TOLERANCE)
    assert ddp_metrics["validation"]["loss"] == pytest.approx(single.metrics["validation"]["loss"], abs=TOLERANCE)
    if method == "full":
        assert ddp_metrics["validation"]["accuracy"] >= 0.75  # it learned: the comparison is not of two coin flips


def test_the_trainers_evaluation_of_windows_scores_each_document_as_one_process_does(
    launch: dict, single_process: dict
) -> None:
    ddp_dir, single = only_run_dir(launch["output"] / "chunks"), single_process["chunks"]
    ddp_metrics = runs.read_json(ddp_dir / runs.METRICS_FILE)
    assert ddp_metrics["train_windows"] == single.metrics["train_windows"] >= 2 * 48  # several windows a review
    ddp_history = runs.read_jsonl(ddp_dir / runs.HISTORY_FILE)
    assert [row["step"] for row in ddp_history] == [row["step"] for row in single.history]
    # Windows matched to the wrong documents score near chance; one process's order scores what it learned.
    assert max(row["accuracy"] for row in single.history) >= 0.75
    for ddp_row, row in zip(ddp_history, single.history, strict=True):
        assert ddp_row["train_loss"] == pytest.approx(row["train_loss"], abs=TOLERANCE)
        assert ddp_row["accuracy"] == pytest.approx(row["accuracy"], abs=RATE_TOLERANCE), ddp_row["step"]
        assert ddp_row["f1_macro"] == pytest.approx(row["f1_macro"], abs=RATE_TOLERANCE), ddp_row["step"]
    assert ddp_metrics["best_step"] == single.metrics["best_step"]
    assert ddp_metrics["validation"]["accuracy"] == pytest.approx(
        single.metrics["validation"]["accuracy"], abs=RATE_TOLERANCE
    )


@pytest.mark.parametrize("name", ["head", "tfidf"])
def test_the_other_methods_train_under_the_launcher_too(name: str, launch: dict) -> None:
    run_dir = only_run_dir(launch["output"] / name)
    assert runs.is_completed(run_dir)
    if name == "head":  # tfidf's env.json records its library versions only: it has no batch or processes
        assert runs.read_json(run_dir / runs.ENV_FILE)["distributed"]["world_size"] == PROCESSES
    predictions = runs.read_jsonl(run_dir / runs.PREDICTIONS_FILE)
    assert [row["index"] for row in predictions] == list(range(101))


def test_predictions_on_an_odd_sized_split_are_complete_and_in_order(
    launch: dict, single_process: dict, workspace: Path
) -> None:
    with (workspace / "data" / "validation.csv").open() as handle:
        validation = list(csv.DictReader(handle))
    assert len(validation) % PROCESSES == 1
    for method in METHODS:
        predictions = runs.read_jsonl(only_run_dir(launch["output"] / method) / runs.PREDICTIONS_FILE)
        reference = runs.read_jsonl(single_process[method].dir / runs.PREDICTIONS_FILE)
        assert [row["index"] for row in predictions] == list(range(len(validation)))
        assert [row["text"] for row in predictions] == [row["review"] for row in validation]
        assert [row["gold"] for row in predictions] == [row["sentiment"] for row in validation]
        for row, expected in zip(predictions, reference, strict=True):
            for label, probability in expected["probabilities"].items():
                assert row["probabilities"][label] == pytest.approx(probability, abs=TOLERANCE)


def test_accelerate_launch_runs_the_cli_module(workspace: Path) -> None:
    """``accelerate launch -m distiltune train``, as a user types it. On a CPU, accelerate starts several processes
    only through MPI (not installed here), so this is one process: the launcher's environment and its module form
    reach one complete run directory."""
    output = workspace / "accelerate"
    values = overrides(workspace, "full", PER_DEVICE_BATCH) | {"train.epochs": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1"]
    command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    done = subprocess.run(
        [*command, "-m", "distiltune", "train", *cli_args(values, output)],
        env=launch_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert runs.is_completed(only_run_dir(output))


def test_a_signal_to_one_process_stops_every_process_at_the_same_checkpoint(launch: dict, workspace: Path) -> None:
    codes = json.loads((workspace / "codes.json").read_text())
    assert codes[len(RUNS)] == 130  # interrupted, on the main process too, which never got the signal itself
    run_dir = launch["output"] / "interrupt" / "run"
    status = read_status(run_dir)
    assert status["status"] == "interrupted" and status["step"] == 5
    assert status["checkpoint"] == "checkpoints/checkpoint-5"
    checkpoint = run_dir / runs.CHECKPOINTS_DIR / "checkpoint-5"
    assert newest_complete_checkpoint(checkpoint.parent) == checkpoint
    assert checkpoint_world_size(checkpoint) == PROCESSES
    assert status["resume"] == f"distiltune train --nproc 2 --resume {run_dir}"
    assert f"Resume with: distiltune train --nproc 2 --resume {run_dir}" in rank_logs(launch["log_dir"], 0)
    assert "received: saving a checkpoint" not in rank_logs(launch["log_dir"], 1)  # the main process says it


def test_a_killed_run_resumes_with_the_same_processes_to_the_uninterrupted_result(
    launch: dict, workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    assert launch["returncode"] != 0  # the launch ended with the crash run killed (torchrun included)
    run_dir = launch["output"] / "crash" / "crashed"
    checkpoints = run_dir / runs.CHECKPOINTS_DIR
    assert sorted(path.name for path in checkpoints.iterdir()) == [".checkpoint-8.partial", "checkpoint-4"]
    assert not (checkpoints / ".checkpoint-8.partial" / LOOP_STATE_FILE).exists()
    assert read_status(run_dir)["status"] == "running"  # SIGKILL leaves no chance to say more

    # One process cannot continue a two-process checkpoint: one line, nothing removed.
    with pytest.raises(RunError, match="trained by 2 processes and this launch has 1"):
        prepare_resume(run_dir, world_size=1)
    monkeypatch.setattr(sys, "argv", ["distiltune", "train", "--resume", str(run_dir)])
    with pytest.raises(SystemExit) as exited:
        main()
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert exited.value.code == 2 and len(errors) == 1
    assert f"Resume with: distiltune train --nproc 2 --resume {run_dir}" in errors[0]
    assert (checkpoints / ".checkpoint-8.partial").is_dir()

    resumed = subprocess.run(
        [sys.executable, "-m", "distiltune", "train", "--nproc", str(PROCESSES), "--resume", str(run_dir)],
        env=launch_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "torch.distributed.run --standalone --nproc_per_node 2 -m distiltune train --resume" in resumed.stderr
    status = read_status(run_dir)
    assert status["status"] == "completed" and status["resumed_from"] == "checkpoints/checkpoint-4"
    assert not any(path.name.startswith(".") for path in checkpoints.iterdir())

    reference = only_run_dir(launch["output"] / "full")
    for name in (runs.HISTORY_FILE, runs.PREDICTIONS_FILE):
        assert runs.read_jsonl(run_dir / name) == runs.read_jsonl(reference / name), name
    metrics, expected = (runs.read_json(path / runs.METRICS_FILE) for path in (run_dir, reference))
    for values in (metrics, expected, metrics["validation"], expected["validation"]):
        for key in TIMING_KEYS:
            values.pop(key, None)
    assert metrics == expected


# --- in-process: the pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [0, 1, 2, 7, 101])
@pytest.mark.parametrize("processes", [1, 2, 3])
def test_shards_cover_every_row_once_in_order(rows: int, processes: int) -> None:
    bounds = [distributed.shard_bounds(rows, processes, index) for index in range(processes)]
    assert [row for start, stop in bounds for row in range(start, stop)] == list(range(rows))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("group_by_length", [False, True])
def test_each_process_gets_a_disjoint_share_of_the_one_process_order(group_by_length: bool) -> None:
    """ResumableTrainer's training sampler under what accelerate does to the training DataLoader under DDP
    (BatchSamplerShard over the sampler's per-device batches): each optimizer step of two processes takes the rows
    one process takes with the global batch, and every row once per epoch."""
    import datasets
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler

    lengths = [3 + (7 * index) % 13 for index in range(48)]
    dataset = datasets.Dataset.from_dict({"input_ids": [[1] * length for length in lengths]})

    def training_sampler(processes: int, per_device_batch: int) -> EpochSeededSampler:
        # The Trainer's side of _get_train_sampler: the arguments it reads, for `processes` processes.
        trainer = SimpleNamespace(
            train_dataset=dataset,
            _length_group_batches=2,
            args=SimpleNamespace(
                train_sampling_strategy="group_by_length" if group_by_length else "random",
                length_column_name="length",
                data_seed=3,
                seed=3,
                train_batch_size=per_device_batch,
                gradient_accumulation_steps=1,
                world_size=processes,
            ),
        )
        sampler = ResumableTrainer._get_train_sampler(trainer, dataset)  # type: ignore[arg-type]
        sampler.set_epoch(1)
        return sampler

    global_batch = PER_DEVICE_BATCH * PROCESSES
    one_process = list(BatchSampler(training_sampler(1, global_batch), global_batch, drop_last=False))
    sampler = training_sampler(PROCESSES, PER_DEVICE_BATCH)
    shares = [
        list(BatchSamplerShard(BatchSampler(sampler, PER_DEVICE_BATCH, drop_last=False), PROCESSES, index))
        for index in range(PROCESSES)
    ]
    steps = [sum((share[step] for share in shares), []) for step in range(len(shares[0]))]
    assert steps == one_process
    assert sorted(sum(steps, [])) == list(range(len(dataset)))


def test_fsdp_and_deepspeed_checkpoints_are_marked_complete_after_the_trainers_own_save(
    tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FSDP and DeepSpeed save through the Trainer's own writer (their shards in their own layout); the marker goes
    in after it, so resume finds those checkpoints and never one whose save was cut short. (The engines need GPUs:
    here the Trainer's writer is replaced by one that leaves FSDP's sharded layout.)"""
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    trainer = ResumableTrainer(model=model, args=args)
    trainer.is_fsdp_enabled = True

    def engine_save(self: Trainer, model: object, trial: object) -> None:
        folder = tmp_path / f"checkpoint-{self.state.global_step}"
        (folder / "pytorch_model_fsdp_0").mkdir(parents=True)
        if self.state.global_step == 6:
            raise OSError("No space left on device")
        self.state.save_to_json(str(folder / TRAINER_STATE_FILE))

    monkeypatch.setattr(Trainer, "_save_checkpoint", engine_save)
    trainer.state.global_step = 3
    trainer._save_checkpoint(model, None)
    assert is_complete_checkpoint(tmp_path / "checkpoint-3")
    assert checkpoint_world_size(tmp_path / "checkpoint-3") == 1
    trainer.state.global_step = 6
    with pytest.raises(OSError):
        trainer._save_checkpoint(model, None)
    assert newest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-3"


def test_processes_that_cannot_form_a_process_group_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from accelerate import PartialState

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    try:
        with pytest.raises(ConfigError, match="2 processes were started, but they cannot train together on mps"):
            distributed.init_process_group("mps")  # accelerate has no multi-process backend for MPS
    finally:
        PartialState._reset_state()


def test_a_run_on_several_machines_is_resumed_by_the_launch_on_each_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert distributed.nodes() == 2
    multi_node = "torchrun --nnodes 2 --nproc_per_node 4 <the run's rendezvous flags> -m distiltune train --resume"
    assert runs.resume_command(tmp_path, 8, nodes=2) == f"{multi_node} {tmp_path}"  # run on each machine
    assert runs.resume_command(tmp_path, 2) == f"distiltune train --nproc 2 --resume {tmp_path}"  # one machine
    # A launch with another number of processes is told the run's own launch, machines included (env.json).
    runs.write_json(tmp_path / runs.ENV_FILE, {"distributed": {"world_size": 8, "nodes": 2}})
    with pytest.raises(RunError, match="--nnodes 2 --nproc_per_node 4"):
        check_world_size(tmp_path, 8, 1)


def test_launch_commands() -> None:
    args = ["--nproc", "2", "--set", "train.lr=1e-3", "--accelerate-config=x.yaml", "--name", "run"]
    assert distributed.without_launcher_options(args) == ["--set", "train.lr=1e-3", "--name", "run"]
    assert distributed.launch_command(args, 2, python="py") == [
        "py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "distiltune", "train", "--set", "train.lr=1e-3", "--name", "run",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="no such file"):
        distributed.launch_command(args, 2, accelerate_config="missing.yaml")
    with pytest.raises(ConfigError, match="at least 1"):
        distributed.launch_command(args, 0)


def test_nproc_reexecs_torchrun_and_accelerate_config_reexecs_accelerate_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    accelerate_config = tmp_path / "fsdp.yaml"
    accelerate_config.write_text("distributed_type: FSDP\n")
    started: list[list[str]] = []

    def exec_instead(path: str, argv: list[str]) -> None:
        started.append(argv)
        raise SystemExit(0)

    monkeypatch.setattr(os, "execv", exec_instead)
    for extra in (["--nproc", "4"], ["--accelerate-config", str(accelerate_config), "--nproc=2"]):
        argv = ["distiltune", "train", "--method", "lora", *extra, "--set", "train.epochs=1"]
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit):
            main()
    assert started[0][1:] == [
        "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4",
        "-m", "distiltune", "train", "--method", "lora", "--set", "train.epochs=1",
    ]  # fmt: skip
    assert started[1][1:] == [
        "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config), "--num_processes", "2",
        "-m", "distiltune", "train", "--method", "lora", "--set", "train.epochs=1",
    ]  # fmt: skip


def test_nproc_inside_a_launched_process_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(os, "execv", lambda *args: pytest.fail("launched a launcher inside a launch"))
    monkeypatch.setattr(sys, "argv", ["distiltune", "train", "--nproc", "2"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert "already started by a launcher" in capsys.readouterr().err


def test_the_process_group_a_run_starts_is_destroyed_at_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Left to interpreter shutdown, a gloo group can abort a finished process (SIGABRT, seen in CI on a resumed
    # 2-process run), so init_process_group registers its destruction. A one-process gloo group stands in for the
    # launcher's: the registration and the handler are what is checked.
    import atexit

    import accelerate
    import torch.distributed as dist

    registered: list[Callable[[], None]] = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)

    def one_process_group(cpu: bool, timeout: object) -> None:
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)

    monkeypatch.setattr(accelerate, "PartialState", one_process_group)
    try:
        distributed.init_process_group("cpu")
        assert dist.is_initialized() and registered == [distributed.destroy_process_group]
        registered[0]()
        assert not dist.is_initialized()
        distributed.destroy_process_group()  # a second call (the user ended it first) does nothing
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
