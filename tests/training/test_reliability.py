"""Crash safety: SIGKILL / SIGINT / SIGTERM then resume equals an uninterrupted run; status.json; atomic
checkpoints; determinism; safe loading of run directories."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from make_fixtures import sentiment_rows
from typer.testing import CliRunner

import distiltune
from distiltune import runs
from distiltune.cli import app
from distiltune.errors import ConfigError, DataError, RunError
from distiltune.runs import read_status
from distiltune.training.checkpoints import (
    LOOP_STATE_FILE,
    TRAINER_STATE_FILE,
    newest_complete_checkpoint,
    remove_partial_checkpoints,
)
from distiltune.training.interrupts import InterruptCallback, InterruptHandler, RunInterrupted
from distiltune.training.trainer import EpochSeededSampler

# Measurements of the machine, not of the run: wall-clock timings and peak memory.
TIMING_KEYS = {
    "train_seconds",
    "train_samples_per_second",
    "eval_samples_per_second",
    "peak_memory_mb",
    "peak_memory_increase_mb",
}


def comparable(metrics: dict) -> dict:
    """Metrics without wall-clock timings (the only thing allowed to differ between identical runs)."""
    return {
        key: comparable(value) if isinstance(value, dict) else value
        for key, value in metrics.items()
        if key not in TIMING_KEYS
    }


@pytest.fixture(scope="module")
def learnable_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["review", "sentiment"])
        writer.writeheader()
        writer.writerows(sentiment_rows(64, seed=7))
    return path


@pytest.fixture(scope="module")
def resumable_overrides(tiny_model: str, learnable_csv: Path) -> dict:
    """48 training rows, batches of 8: 6 optimizer steps per epoch, 24 in all. Evaluation + checkpoint every 4
    steps (mostly mid-epoch); loss logged every 3 steps, so an interrupt checkpoint can fall between two log
    lines. Learns within the 24 steps, so the metrics compared below really move. (A random tiny model learns this
    fast only for some data orders and learning rates; this seed and lr do, which the first test checks.)"""
    return {
        "model.name": tiny_model,
        "data.dataset": str(learnable_csv),
        "data.text_column": "review",
        "data.label_column": "sentiment",
        "data.max_length": 16,
        "data.validation_fraction": 0.25,
        "train.epochs": 4,
        "train.batch_size": 8,
        "train.lr": 2e-2,
        "train.warmup_fraction": 0.0,
        "train.precision": "fp32",
        "train.eval_strategy": "steps",
        "train.eval_steps": 4,
        "train.logging_steps": 3,
    }


@pytest.fixture(scope="module")
def reference_run(resumable_overrides: dict, tmp_path_factory: pytest.TempPathFactory):
    """The uninterrupted run every resumed run must equal."""
    output = tmp_path_factory.mktemp("reference")
    return distiltune.train(None, {**resumable_overrides, "run.output_dir": str(output)})


def run_cli_in_subprocess(args: list[str], patch: str, cwd: Path) -> subprocess.CompletedProcess:
    """``distiltune <args>`` in a fresh interpreter, after running ``patch`` (the fault to inject)."""
    script = (
        "import sys\n"
        + textwrap.dedent(patch)
        + "\nfrom distiltune.cli import main\nsys.argv = ['distiltune', *sys.argv[1:]]\nmain()\n"
    )
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def train_args(overrides: dict, output_dir: Path) -> list[str]:
    args = ["train", "--output-dir", str(output_dir), "--name", "run"]
    for key, value in overrides.items():
        args += ["--set", f"{key}={value}"]
    return args


def assert_same_as_reference(run, reference) -> None:
    assert comparable(run.metrics) == comparable(reference.metrics)
    # Every evaluation row (eval loss to full precision, mean logged train loss) matches, not just the end.
    assert runs.read_jsonl(run.dir / runs.HISTORY_FILE) == runs.read_jsonl(reference.dir / runs.HISTORY_FILE)
    assert runs.read_jsonl(run.dir / runs.PREDICTIONS_FILE) == runs.read_jsonl(reference.dir / runs.PREDICTIONS_FILE)


def test_reference_run_learns_and_writes_status(reference_run) -> None:
    # The comparisons below are only meaningful if training moves the weights and the metrics.
    history = runs.read_jsonl(reference_run.dir / runs.HISTORY_FILE)
    assert [row["step"] for row in history] == [4, 8, 12, 16, 20, 24]
    assert history[-1]["eval_loss"] < history[0]["eval_loss"]
    assert history[0]["accuracy"] == 0.5 and reference_run.metrics["validation"]["accuracy"] >= 0.75
    status = read_status(reference_run.dir)
    assert status["status"] == "completed" and "error" not in status and "resume" not in status


def test_sigkill_while_writing_a_checkpoint_then_resume_equals_uninterrupted(
    resumable_overrides: dict, reference_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SIGKILL half-way through the second checkpoint: its weights are written, its RNG state is not.
    patch = """
        import os, signal
        from distiltune.training.trainer import ResumableTrainer
        original = ResumableTrainer._save_rng_state
        saves = []
        def save_rng_state_then_die(self, output_dir):
            saves.append(output_dir)
            if len(saves) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, output_dir)
        ResumableTrainer._save_rng_state = save_rng_state_then_die
    """
    killed = run_cli_in_subprocess(train_args(resumable_overrides, tmp_path), patch, tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    run_dir = tmp_path / "run"
    checkpoints = run_dir / runs.CHECKPOINTS_DIR
    assert sorted(p.name for p in checkpoints.iterdir()) == [".checkpoint-8.partial", "checkpoint-4"]
    assert read_status(run_dir)["status"] == "running"  # SIGKILL leaves no chance to say more
    assert newest_complete_checkpoint(checkpoints).name == "checkpoint-4"

    # Every torch.load during the resume (optimizer, scheduler, RNG states) must be weights_only.
    import torch

    real_load, loads = torch.load, []

    def recording_load(*args, **kwargs):
        loads.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    resumed = distiltune.train(resume=run_dir)
    assert loads and all(flag is True for flag in loads), loads
    assert_same_as_reference(resumed, reference_run)
    assert not any(p.name.startswith(".") for p in checkpoints.iterdir())
    status = read_status(run_dir)
    assert status["status"] == "completed" and status["resumed_from"] == "checkpoints/checkpoint-4"
    with pytest.raises(RunError, match="already completed"):
        distiltune.train(resume=run_dir)


def test_sigint_saves_a_checkpoint_marks_interrupted_and_resumes_exactly(
    resumable_overrides: dict, reference_run, tmp_path: Path
) -> None:
    # Ctrl-C during step 5: between two log lines (3, 6) and two evaluations (4, 8), mid-epoch.
    patch = """
        import os, signal
        from distiltune.training.interrupts import InterruptCallback
        original = InterruptCallback.on_step_end
        def press_ctrl_c_at_step_5(self, args, state, control, **kwargs):
            if state.global_step == 5:
                os.kill(os.getpid(), signal.SIGINT)
            return original(self, args, state, control, **kwargs)
        InterruptCallback.on_step_end = press_ctrl_c_at_step_5
    """
    interrupted = run_cli_in_subprocess(train_args(resumable_overrides, tmp_path), patch, tmp_path)
    run_dir = tmp_path / "run"
    assert interrupted.returncode == 130, interrupted.stderr[-2000:]
    assert f"Resume with: distiltune train --resume {run_dir}" in interrupted.stderr
    assert "Traceback" not in interrupted.stderr
    status = read_status(run_dir)
    assert status["status"] == "interrupted" and status["step"] == 5
    assert status["checkpoint"] == "checkpoints/checkpoint-5"
    assert status["resume"] == f"distiltune train --resume {run_dir}"
    assert (run_dir / runs.CHECKPOINTS_DIR / "checkpoint-5" / LOOP_STATE_FILE).is_file()
    assert not (run_dir / runs.MODEL_DIR).exists()

    result = CliRunner().invoke(app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 0, result.output
    resumed = runs.read_json(run_dir / runs.METRICS_FILE)
    assert comparable(resumed) == comparable(reference_run.metrics)
    assert runs.read_jsonl(run_dir / runs.HISTORY_FILE) == runs.read_jsonl(reference_run.dir / runs.HISTORY_FILE)
    assert read_status(run_dir)["status"] == "completed"


def test_sigterm_at_an_epoch_end_in_process_then_resume_equals_uninterrupted(
    resumable_overrides: dict, reference_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = InterruptCallback.on_step_end

    def terminate_at_step_6(self, args, state, control, **kwargs):
        if state.global_step == 6:  # the last step of epoch 1: the resume starts a fresh epoch
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(InterruptCallback, "on_step_end", terminate_at_step_6)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(RunInterrupted, match="SIGTERM at step 6.*checkpoint-6 is saved"):
        distiltune.train(None, {**resumable_overrides, "run.output_dir": str(tmp_path), "run.name": "run"})
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    assert read_status(tmp_path / "run")["status"] == "interrupted"
    monkeypatch.setattr(InterruptCallback, "on_step_end", original)
    assert_same_as_reference(distiltune.train(resume=tmp_path / "run"), reference_run)


def test_a_second_signal_stops_at_once() -> None:
    handler = InterruptHandler()
    with pytest.raises(KeyboardInterrupt, match="outside the training loop"):
        handler._handle(signal.SIGINT, None)  # nothing to checkpoint yet: stop now
    handler.loop_active = True
    handler._handle(signal.SIGINT, None)  # first one during training: finish the step, checkpoint
    assert handler.requested == "SIGINT"
    with pytest.raises(KeyboardInterrupt, match="SIGINT again"):
        handler._handle(signal.SIGINT, None)


def test_a_run_killed_before_its_first_checkpoint_starts_over(reference_run, tmp_path: Path) -> None:
    run_dir = tmp_path / "copy"
    shutil.copytree(reference_run.dir, run_dir)
    for name in (runs.CHECKPOINTS_DIR, runs.MODEL_DIR):
        shutil.rmtree(run_dir / name)
    (run_dir / runs.METRICS_FILE).unlink()
    (run_dir / "status.json").write_text(json.dumps({"status": "running", "pid": 2**22 + 1, "host": "elsewhere"}))
    resumed = distiltune.train(resume=run_dir)
    assert_same_as_reference(resumed, reference_run)


def test_half_written_checkpoints_are_never_picked_up(tmp_path: Path) -> None:
    def fake_checkpoint(name: str, files: tuple[str, ...]) -> None:
        (tmp_path / name).mkdir()
        for file in files:
            (tmp_path / name / file).write_text("{}")

    complete = (TRAINER_STATE_FILE, LOOP_STATE_FILE, "model.safetensors")
    fake_checkpoint("checkpoint-2", complete)
    fake_checkpoint("checkpoint-10", complete)
    fake_checkpoint(".checkpoint-12.partial", complete)  # a write that never got renamed
    fake_checkpoint("checkpoint-11", (TRAINER_STATE_FILE, "model.safetensors"))  # no marker: not ours/complete
    assert newest_complete_checkpoint(tmp_path).name == "checkpoint-10"
    assert remove_partial_checkpoints(tmp_path) == [".checkpoint-12.partial"]
    assert newest_complete_checkpoint(tmp_path / "missing") is None


def test_data_order_depends_only_on_seed_and_epoch() -> None:
    import torch

    lengths = [5, 9, 3, 12, 7, 7, 2, 15, 4, 8, 11, 6]
    sampler = EpochSeededSampler(len(lengths), seed=3, lengths=lengths, batch_size=4)
    sampler.set_epoch(1)
    first = list(sampler)
    torch.manual_seed(123)  # the global RNG (which resuming restores late) must not matter
    assert list(sampler) == first and sorted(first) == list(range(12))
    sampler.set_epoch(2)
    assert list(sampler) != first
    plain = EpochSeededSampler(12, seed=3)
    assert sorted(plain) == list(range(12)) and list(plain) == list(plain)


def test_length_grouped_batches_hold_similar_lengths_in_random_order() -> None:
    import torch

    from distiltune.training.trainer import length_grouped_indices

    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(10, 500, (803,), generator=generator).tolist()
    order = length_grouped_indices(lengths, 16, torch.Generator().manual_seed(1))
    assert sorted(order) == list(range(803))
    batches = [order[start : start + 16] for start in range(0, len(order), 16)]
    assert len(batches[-1]) == 3  # the short batch is last, so every other batch is full and aligned
    assert max(lengths[i] for i in batches[0]) == max(lengths)  # the longest batch first
    # similar lengths inside a batch: far less spread than random batches of the same data
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches[:-1]])
    assert spread < 60
    # ...but no long-to-short ramp across batches: batch maxima are not ordered (the Trainer's grouping runs
    # downhill inside each of its mega-batches, so 9 batches in 10 are shorter than the one before)
    maxima = [max(lengths[i] for i in b) for b in batches[1:-1]]
    downhill = np.mean([later < earlier for earlier, later in zip(maxima, maxima[1:], strict=False)])
    assert 0.3 < downhill < 0.7


def test_resume_needs_a_resumable_run(reference_run, tmp_path: Path) -> None:
    with pytest.raises(RunError, match="no config.yaml"):
        distiltune.train(resume=tmp_path)
    with pytest.raises(ConfigError, match="--resume continues a run"):
        distiltune.train(None, {"train.lr": 1e-3}, resume=reference_run.dir)
    live = tmp_path / "live"
    shutil.copytree(reference_run.dir, live)
    import socket

    (live / "status.json").write_text(
        json.dumps({"status": "running", "pid": os.getppid(), "host": socket.gethostname()})
    )
    with pytest.raises(RunError, match="still being trained by process"):
        distiltune.train(resume=live)


def test_a_data_mistake_fails_before_the_run_directory_exists(resumable_overrides: dict, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        train_args({**resumable_overrides, "data.label_column": "stars"}, tmp_path),
    )
    assert isinstance(result.exception, DataError) and "no label column 'stars'" in str(result.exception)
    assert not (tmp_path / "run").exists()


def test_a_failed_run_names_the_resume_command_only_where_resuming_helps(
    resumable_overrides: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A setting the model refuses (the max length against its limit) is found before the run directory exists:
    # there is nothing to resume (tests/cli/test_cli.py: a user error after it records no resume command either).
    with pytest.raises(ConfigError, match="exceeds the model's limit"):
        distiltune.train(
            None, {**resumable_overrides, "data.max_length": 4096, "run.output_dir": str(tmp_path), "run.name": "a"}
        )
    assert not (tmp_path / "a").exists()

    # A crash while training (here while writing the first checkpoint): resuming continues the run.
    from distiltune.training.trainer import ResumableTrainer

    def crashes(self, output_dir):
        raise RuntimeError("the machine fell over")

    monkeypatch.setattr(ResumableTrainer, "_save_rng_state", crashes)
    with pytest.raises(RuntimeError, match="fell over"):
        distiltune.train(None, {**resumable_overrides, "run.output_dir": str(tmp_path), "run.name": "b"})
    status = read_status(tmp_path / "b")
    assert status["status"] == "failed" and status["error"] == "RuntimeError: the machine fell over"
    assert status["resume"] == f"distiltune train --resume {tmp_path / 'b'}"


def test_deterministic_turns_on_torch_deterministic_kernels_for_the_run_only(
    resumable_overrides: dict, tmp_path: Path
) -> None:
    """A CPU run is deterministic anyway (two runs without the flag give identical metrics: see the resume tests);
    what --deterministic adds is torch's deterministic-kernel mode and cuBLAS's fixed workspace while the run lasts,
    which the training loop can observe and env.json records, and which are restored afterwards."""
    import torch
    from transformers import TrainerCallback

    class Observer(TrainerCallback):
        seen: list[tuple[bool, str | None]] = []

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
            self.seen.append((torch.are_deterministic_algorithms_enabled(), os.environ.get("CUBLAS_WORKSPACE_CONFIG")))

    overrides = {**resumable_overrides, "train.max_steps": 2, "run.output_dir": str(tmp_path)}
    observed = {}
    for flag in (True, False):
        observer = Observer()
        observer.seen = []
        run = distiltune.train(None, {**overrides, "train.deterministic": flag}, callbacks=[observer])
        observed[flag] = (set(observer.seen), runs.read_json(run.dir / runs.ENV_FILE)["deterministic_algorithms"])
        assert (f"deterministic: {str(flag).lower()}") in (run.dir / runs.CONFIG_FILE).read_text()
    assert observed[True] == ({(True, ":4096:8")}, True)
    assert observed[False] == ({(False, None)}, False)
    assert not torch.are_deterministic_algorithms_enabled() and "CUBLAS_WORKSPACE_CONFIG" not in os.environ


@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_resumed_peft_runs_equal_uninterrupted_ones(
    method: str, resumable_overrides: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for full fine-tuning: SIGTERM mid-run, then resume, finishes with the metrics, history and predictions of
    the run that was never interrupted (the adapter, the head in modules_to_save and the optimizer all resume)."""
    options = {"method.name": method, "train.lr": 1e-2}
    if method == "prompt":
        options["method.num_virtual_tokens"] = 4
    overrides = {**resumable_overrides, **options, "train.epochs": 2, "run.output_dir": str(tmp_path)}
    reference = distiltune.train(None, {**overrides, "run.name": "reference"})
    original = InterruptCallback.on_step_end

    def terminate_at_step_5(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN202
        if state.global_step == 5:  # mid-epoch, between two evaluations
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(InterruptCallback, "on_step_end", terminate_at_step_5)
    with pytest.raises(RunInterrupted, match="SIGTERM at step 5"):
        distiltune.train(None, {**overrides, "run.name": "interrupted"})
    monkeypatch.setattr(InterruptCallback, "on_step_end", original)
    resumed = distiltune.train(resume=tmp_path / "interrupted")
    assert_same_as_reference(resumed, reference)
    assert read_status(tmp_path / "interrupted")["resumed_from"] == "checkpoints/checkpoint-5"


def test_checkpoints_and_models_hold_safetensors_weights_only(reference_run) -> None:
    weight_suffixes = (".bin", ".ckpt", ".h5", ".msgpack")
    for path in reference_run.dir.rglob("*"):
        assert not path.name.endswith(weight_suffixes), path
    for checkpoint in (reference_run.dir / runs.CHECKPOINTS_DIR).iterdir():
        assert (checkpoint / "model.safetensors").is_file()
        # torch.save'd files hold optimizer/scheduler/RNG state only, and load with weights_only=True.
        assert {p.name for p in checkpoint.glob("*.p*t*")} <= {"optimizer.pt", "scheduler.pt", "rng_state.pth"}


def test_no_torch_load_without_weights_only_in_the_package() -> None:
    source = Path(distiltune.__file__).parent
    for path in source.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path}:{number}"


def test_remote_code_is_off_and_weights_are_safetensors_unless_asked(
    tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForSequenceClassification

    from distiltune.config import load_config
    from distiltune.modeling import load_model_for_classification

    assert load_config().model.trust_remote_code is False
    seen = {}
    real = AutoModelForSequenceClassification.from_pretrained

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoModelForSequenceClassification, "from_pretrained", spy)
    load_model_for_classification(tiny_model, {0: "neg", 1: "pos"})
    assert seen["trust_remote_code"] is False and seen["use_safetensors"] is True


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate_weights", r"model.safetensors is damaged"),
        ("drop_tokenizer", r"missing tokenizer files"),
        ("mismatch_labels", r"labels.json has 3 labels but model/config.json has 2"),
        ("drop_labels", r"missing labels.json"),
    ],
)
def test_predicting_from_a_damaged_run_directory_fails_clearly(reference_run, tmp_path: Path, damage, message):
    run_dir = tmp_path / "run"
    shutil.copytree(reference_run.dir, run_dir, ignore=shutil.ignore_patterns(runs.CHECKPOINTS_DIR))
    model_dir = run_dir / runs.MODEL_DIR
    if damage == "truncate_weights":
        weights = model_dir / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-100])
    elif damage == "drop_tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
            (model_dir / name).unlink(missing_ok=True)
    elif damage == "mismatch_labels":
        labels = runs.read_json(model_dir / "labels.json")
        labels["id2label"]["2"] = "neutral"
        runs.write_json(model_dir / "labels.json", labels)
    else:
        (model_dir / "labels.json").unlink()
    with pytest.raises(RunError, match=message):
        distiltune.load(run_dir)
    result = CliRunner().invoke(app, ["predict", str(run_dir), "good film"])
    assert result.exit_code != 0


def test_predicting_from_an_unfinished_run_names_its_status(reference_run, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(reference_run.dir, run_dir, ignore=shutil.ignore_patterns(runs.CHECKPOINTS_DIR))
    shutil.rmtree(run_dir / runs.MODEL_DIR)
    runs.write_json(
        run_dir / "status.json", {"status": "interrupted", "resume": f"distiltune train --resume {run_dir}"}
    )
    with pytest.raises(RunError, match=r"holds no finished model.*interrupted.*--resume"):
        distiltune.load(run_dir)


def test_sys_exit_inside_training_marks_the_run_failed(
    resumable_overrides: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distiltune.training.trainer import ResumableTrainer

    def exits(self, output_dir):
        raise SystemExit(3)

    monkeypatch.setattr(ResumableTrainer, "_save_rng_state", exits)
    with pytest.raises(SystemExit):
        distiltune.train(None, {**resumable_overrides, "run.output_dir": str(tmp_path), "run.name": "run"})
    status = read_status(tmp_path / "run")
    assert status["status"] == "failed" and status["error"] == "exited with status 3"


def test_a_full_disk_while_checkpointing_fails_cleanly(
    resumable_overrides: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from distiltune.training.trainer import ResumableTrainer

    def no_space_left(self, output_dir):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ResumableTrainer, "_save_rng_state", no_space_left)
    with pytest.raises(RunError, match=r"checkpoint-4 \(No space left on device\); the previous checkpoints are"):
        distiltune.train(None, {**resumable_overrides, "run.output_dir": str(tmp_path), "run.name": "run"})
    assert list((tmp_path / "run" / runs.CHECKPOINTS_DIR).iterdir()) == []  # the half-written folder is gone
    status = read_status(tmp_path / "run")
    assert status["status"] == "failed" and "No space left on device" in status["error"]


def test_run_directories_are_never_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs.time, "strftime", lambda _format: "2026-01-01_00-00-00")  # two runs in one second
    first = runs.create_run_dir(tmp_path, "org/model", "data.csv", "full")
    (first / "metrics.json").write_text("{}")
    second = runs.create_run_dir(tmp_path, "org/model", "data.csv", "full")
    assert second.name == f"{first.name}-2" and (first / "metrics.json").read_text() == "{}"
    with pytest.raises(RunError, match="already exists; it is never overwritten"):
        runs.create_run_dir(tmp_path, "org/model", "data.csv", "full", name=first.name)


def test_compare_resumes_an_interrupted_run_instead_of_starting_over(
    resumable_overrides: dict, reference_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = InterruptCallback.on_step_end

    def terminate_at_step_5(self, args, state, control, **kwargs):
        if state.global_step == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(InterruptCallback, "on_step_end", terminate_at_step_5)
    with pytest.raises(RunInterrupted):
        distiltune.compare(None, resumable_overrides, methods=["full"], seeds=[42], output_dir=tmp_path)
    monkeypatch.setattr(InterruptCallback, "on_step_end", original)
    (compare_dir,) = [path for path in tmp_path.iterdir() if path.is_dir()]
    resumed = distiltune.compare(resume=compare_dir)
    run_dir = compare_dir / "distilbert_full_seed42"
    assert read_status(run_dir)["resumed_from"] == "checkpoints/checkpoint-5"
    assert not any(path.name.endswith(".incomplete") for path in compare_dir.iterdir())
    assert [record.status for record in resumed.runs] == ["completed"]
    assert (
        comparable(runs.read_json(run_dir / runs.METRICS_FILE))["validation"]
        == comparable(reference_run.metrics)["validation"]
    )


def test_smaller_length_groups_mix_lengths_more() -> None:
    import torch

    from distiltune.training.trainer import length_grouped_indices

    lengths = torch.randint(10, 500, (1024,), generator=torch.Generator().manual_seed(0)).tolist()

    def padded_tokens(order: list[int]) -> int:
        assert sorted(order) == list(range(1024))
        return sum(16 * max(lengths[i] for i in order[start : start + 16]) for start in range(0, 1024, 16))

    def grouped(group_batches: int | None) -> int:
        return padded_tokens(length_grouped_indices(lengths, 16, torch.Generator().manual_seed(1), group_batches))

    # one batch per group sorts nothing across batches: the batches are random draws
    random_batches = padded_tokens(torch.randperm(1024, generator=torch.Generator().manual_seed(1)).tolist())
    one, four, default, everything = grouped(1), grouped(4), grouped(None), grouped(64)
    assert abs(one - random_batches) / random_batches < 0.05
    assert one > four > default >= everything  # default: min(50, 1024 // 64) = 16 batches per group
    assert everything / sum(lengths) < 1.02


def test_resuming_a_run_written_before_a_key_existed_keeps_its_old_behaviour(reference_run, tmp_path: Path) -> None:
    import yaml

    from distiltune.training.resume import prepare_resume

    old = tmp_path / "old"
    shutil.copytree(reference_run.dir, old)
    (old / "status.json").write_text(json.dumps({"status": "interrupted"}))
    saved = yaml.safe_load((old / "config.yaml").read_text())
    assert saved["train"]["length_group_batches"] == 4  # today's default is written into every run
    saved["train"]["length_group_batches"] = 2
    (old / "config.yaml").write_text(yaml.safe_dump(saved))
    assert prepare_resume(old).config.train.length_group_batches == 2
    del saved["train"]["length_group_batches"]  # as written by a version without the key
    (old / "config.yaml").write_text(yaml.safe_dump(saved))
    assert prepare_resume(old).config.train.length_group_batches is None  # transformers' rule, as then
