"""Started by ``tests/training/test_distributed.py`` under ``torchrun --nproc_per_node 2``: every process runs
``distiltune train`` (the CLI, as a user would) once per entry of a plan, so one launch trains several runs.

    torchrun --nproc_per_node 2 distributed_driver.py PLAN.json

PLAN.json: ``{"runs": [ARGS, ...], "interrupt": ARGS, "crash": ARGS, "codes": PATH}``, each ARGS the arguments
after ``distiltune train``; the main process writes the exit codes of the runs and of the interrupted run to PATH.

* ``interrupt``: the second process alone gets SIGTERM during step 5 (the first never does): the processes must
  agree to save checkpoint-5 together and stop.
* ``crash``: killed like a lost machine (torchrun and every process, SIGKILL) while the second process writes its
  part of the second checkpoint, so the first checkpoint is complete and the second is half-written.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path


def run_cli(args: list[str]) -> int:
    from distiltune.cli import main

    sys.argv = ["distiltune", "train", *args]
    try:
        main()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except Exception:  # a bug: shown in the process's log, and the plan goes on so other tests can tell
        traceback.print_exc()
        return 1
    return 0


def kill_everything_at_second_save() -> None:
    """Process 1, while writing its RNG state into the second checkpoint: SIGKILL every process and torchrun."""
    import psutil

    from distiltune.training.trainer import ResumableTrainer

    original = ResumableTrainer._save_rng_state
    saves: list[str] = []

    def save_rng_state_then_die(self: ResumableTrainer, output_dir: str) -> None:
        saves.append(output_dir)
        if len(saves) == 2 and self.args.process_index == 1:
            # Process 0 writes the model into the staging folder while this one runs ahead to its RNG state; on a
            # busy machine the kill could land before the folder exists. Process 0 cannot finish the checkpoint
            # without this process (it waits in the gather after the writes), so waiting here is safe.
            staging = Path(output_dir)
            deadline = time.monotonic() + 120
            while not any(staging.glob("*.safetensors")) and time.monotonic() < deadline:
                time.sleep(0.05)
            launcher = psutil.Process().parent()
            others = [process for process in launcher.children() if process.pid != os.getpid()]
            for process in others:
                process.kill()
            # Gone (reaped by torchrun) before torchrun goes: an orphan could stay a zombie, which looks alive to
            # resume's "is it still running" check.
            psutil.wait_procs(others, timeout=30)
            launcher.kill()
            os.kill(os.getpid(), signal.SIGKILL)
        original(self, output_dir)

    ResumableTrainer._save_rng_state = save_rng_state_then_die  # type: ignore[method-assign]


def run_with_sigterm_to_the_second_process_at_step_5(args: list[str]) -> int:
    from distiltune.training.interrupts import InterruptCallback

    original = InterruptCallback.on_step_end

    def on_step_end(self: InterruptCallback, args: object, state: object, control: object, **kwargs: object) -> object:
        if state.global_step == 5 and os.environ.get("RANK") == "1":  # type: ignore[attr-defined]
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, args, state, control, **kwargs)

    InterruptCallback.on_step_end = on_step_end  # type: ignore[method-assign]
    try:
        return run_cli(args)
    finally:
        InterruptCallback.on_step_end = original  # type: ignore[method-assign]


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    codes: list[int] = []

    def record(code: int) -> None:  # after every run, so a run that fails does not hide the others' codes
        codes.append(code)
        if os.environ.get("RANK") == "0":
            Path(plan["codes"]).write_text(json.dumps(codes))

    for args in plan["runs"]:
        record(run_cli(args))
    if plan.get("interrupt"):
        record(run_with_sigterm_to_the_second_process_at_step_5(plan["interrupt"]))
    if plan.get("crash"):
        kill_everything_at_second_save()
        run_cli(plan["crash"])
        sys.exit(3)  # not reached: the run is killed first


if __name__ == "__main__":
    main()
