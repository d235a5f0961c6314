"""Several processes, one run: where a process stands (rank, world size), the launch commands, and the few
collectives a run needs around the Trainer's own.

``torchrun`` and ``accelerate launch`` start one process per device and tell each its place in environment variables
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``). Every process runs the whole of ``train()``; the Trainer (through
accelerate) wraps the model in DistributedDataParallel and shards the batches. Around it, distiltune keeps one
writer: the main process (rank 0) creates the run directory, writes every file and keeps ``status.json``; the
others do the same computations, write nothing and get the main process's results (:func:`on_main`), so that an
error on the main process ends every process with the same error instead of leaving them waiting.

With one process every function here is a plain call: no process group, no collective.

torch is imported inside the functions that use it: the CLI asks this module for the rank and the launch command
before it re-execs a launcher, and should not wait for torch to load first.
"""

from __future__ import annotations

import atexit
import os
import pickle
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from distiltune.errors import ConfigError, RunError

T = TypeVar("T")

#: Seconds a process waits in a collective for the others (the Trainer's ``ddp_timeout`` default): the main process
#: alone writes the model and the final files while the others wait.
TIMEOUT_SECONDS = 1800

#: The launchers' variables for the number of processes and this process's rank (torchrun and accelerate set
#: WORLD_SIZE / RANK; MPI launchers their own, which accelerate also reads).
_WORLD_SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARS = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")

#: The ``distiltune train`` options that start a launcher; the launched processes get the other arguments.
LAUNCHER_OPTIONS = ("--nproc", "--accelerate-config")


def _first_int(names: Sequence[str], default: int) -> int:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return int(value)
    return default


def _group_ready() -> bool:
    """True when this process has joined a torch.distributed process group (torch already loaded)."""
    dist = sys.modules.get("torch.distributed")
    return bool(dist is not None and dist.is_available() and dist.is_initialized())


def world_size() -> int:
    """How many processes train this run (1 without a launcher)."""
    if _group_ready():
        import torch.distributed as dist

        return int(dist.get_world_size())
    return max(1, _first_int(_WORLD_SIZE_VARS, 1))


def processes_per_node() -> int:
    """How many of the processes run on this machine (torchrun's ``LOCAL_WORLD_SIZE``; all of them without)."""
    return max(1, _first_int(("LOCAL_WORLD_SIZE",), world_size()))


def nodes() -> int:
    """How many machines the processes run on (1 without a launcher)."""
    return max(1, world_size() // processes_per_node())


def rank() -> int:
    """This process's global rank (0 without a launcher)."""
    if _group_ready():
        import torch.distributed as dist

        return int(dist.get_rank())
    return _first_int(_RANK_VARS, 0)


def is_main_process() -> bool:
    """The process that writes the run directory, the logs and status.json: rank 0."""
    return rank() == 0


def is_launched() -> bool:
    """True inside a process started by torchrun / accelerate launch with more than one process."""
    return world_size() > 1


# --- launching ----------------------------------------------------------------------------------------


def without_launcher_options(args: Sequence[str]) -> list[str]:
    """``args`` less ``--nproc N`` and ``--accelerate-config FILE`` (either as two words or ``--opt=value``)."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in LAUNCHER_OPTIONS:
            skip = "=" not in arg
            continue
        kept.append(arg)
    return kept


def launch_command(
    train_args: Sequence[str],
    nproc: int | None = None,
    accelerate_config: str | Path | None = None,
    python: str | None = None,
) -> list[str]:
    """The command that runs ``distiltune train <train_args>`` in ``nproc`` processes on this machine.

    Without an accelerate config: ``python -m torch.distributed.run --standalone --nproc_per_node N -m distiltune
    train ...`` (``--standalone`` picks a free port, so two runs on one machine do not collide). With one:
    ``python -m accelerate.commands.launch --config_file FILE [--num_processes N] -m distiltune train ...``, which
    is how FSDP and DeepSpeed are switched on. ``train_args`` may still hold the launcher options; they are
    dropped so the launched processes do not launch again.
    """
    if nproc is not None and nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}.", "Pass the number of processes to start.")
    python = python or sys.executable
    rest = ["-m", "distiltune", "train", *without_launcher_options(train_args)]
    if accelerate_config is not None:
        config = Path(accelerate_config)
        if not config.is_file():
            raise ConfigError(
                f"--accelerate-config {config}: no such file.",
                "Write one with `accelerate config --config_file FILE` (see docs/distributed.md).",
            )
        processes = ["--num_processes", str(nproc)] if nproc is not None else []
        return [python, "-m", "accelerate.commands.launch", "--config_file", str(config), *processes, *rest]
    if nproc is None:
        raise ConfigError("Nothing to launch: pass --nproc N or --accelerate-config FILE.")
    return [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *rest]


def refuse_nested_launch() -> None:
    """--nproc / --accelerate-config start a launcher; inside one they would start processes per process."""
    if is_launched():
        raise ConfigError(
            "--nproc and --accelerate-config start torchrun / accelerate launch themselves; this process was already "
            f"started by a launcher ({world_size()} processes).",
            "Leave those options out when you launch with torchrun or accelerate launch yourself.",
        )


# --- the process group ----------------------------------------------------------------------------------


def init_process_group(device: Any) -> None:
    """Join the launcher's process group before anything is written (no-op for one process or when joined).

    The run directory is created on the main process and its path sent to the others before the Trainer exists,
    so the group is started here, the way the Trainer would (accelerate's ``PartialState``: gloo on CPU, NCCL on
    CUDA, DeepSpeed's own under ``accelerate launch`` with a DeepSpeed config). The Trainer then finds it started
    and uses it.
    """
    if world_size() <= 1 or _group_ready():
        return
    import torch
    from accelerate import PartialState

    PartialState(cpu=torch.device(device).type == "cpu", timeout=timedelta(seconds=TIMEOUT_SECONDS))
    if not _group_ready():  # e.g. MPS: accelerate has no multi-process backend for it
        raise ConfigError(
            f"{world_size()} processes were started, but they cannot train together on {device}.",
            "Launch several processes on CUDA GPUs or on the CPU (train.device=cpu).",
        )
    # Left to interpreter shutdown, gloo's worker threads can outlive the interpreter and abort the process
    # ("terminate called without an active exception", SIGABRT) after a finished run; torchrun then reports the
    # launch as failed and kills the other ranks. Whoever starts the group ends it while Python is still alive.
    atexit.register(destroy_process_group)


def destroy_process_group() -> None:
    """Leave the process group (no-op when none is joined). Registered to run at exit by :func:`init_process_group`;
    every collective of a run has completed on this process by then, so no other process waits on it."""
    if _group_ready():
        import torch.distributed as dist

        dist.destroy_process_group()


def barrier() -> None:
    if _group_ready() and world_size() > 1:
        import torch.distributed as dist

        dist.barrier()


def _portable(error: BaseException) -> BaseException:
    """The error as the other processes can receive it (pickled); a description when it does not pickle."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RunError(f"The main process failed: {type(error).__name__}: {error}")


def on_main(function: Callable[[], T]) -> T:
    """Call ``function`` on the main process only; every process returns its result, or raises its error.

    For what only one process may do (create the run directory, write a file, measure the machine once), and for
    results every process must agree on. The result (or error) must pickle: it is sent with torch.distributed.
    """
    if world_size() <= 1 or not _group_ready():
        return function()
    import torch.distributed as dist

    box: list[Any] = [None]
    failure: BaseException | None = None
    if is_main_process():
        try:
            box[0] = ("result", function())
        except BaseException as err:  # every process must hear of it, whatever it is, or they wait until timeout
            failure = err
            box[0] = ("error", _portable(err))
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        if failure is not None:
            raise failure
        raise value
    return value


def all_gather(value: T) -> list[T]:
    """``value`` from every process, in rank order (a list of one without a process group)."""
    if world_size() <= 1 or not _group_ready():
        return [value]
    import torch.distributed as dist

    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def require_shared_directory(path: Path) -> None:
    """Every process must see the directory the main process created: checkpoints (each process's RNG state) and
    the final files are written once into it. On several nodes that needs a shared filesystem."""
    seen = all_gather(Path(path).is_dir())
    if not all(seen):
        missing = [index for index, ok in enumerate(seen) if not ok]
        raise RunError(
            f"Processes {missing} cannot see the run directory {path} that the main process created.",
            "Put run.output_dir on a filesystem every node shares (see docs/distributed.md).",
        )


# --- evaluation -----------------------------------------------------------------------------------------


def shard_bounds(rows: int, processes: int, index: int) -> tuple[int, int]:
    """Contiguous slice ``[start, stop)`` of ``rows`` for process ``index``: sizes differ by at most one, nothing
    is repeated or left out, and the slices in rank order are the rows in order."""
    base, extra = divmod(rows, processes)
    start = index * base + min(index, extra)
    return start, start + base + (1 if index < extra else 0)


def sharded(
    predict: Callable[[Sequence[str], Sequence[str] | None], np.ndarray],
) -> Callable[[Sequence[str], Sequence[str] | None], np.ndarray]:
    """``predict`` split over the processes: each predicts a contiguous slice of the rows, and every process gets
    all the logits back in input order (no row twice, none dropped, whatever the number of rows). With one process
    it is ``predict`` itself."""
    if world_size() <= 1 or not _group_ready():
        return predict

    def predict_sharded(texts: Sequence[str], pairs: Sequence[str] | None) -> np.ndarray:
        start, stop = shard_bounds(len(texts), world_size(), rank())
        local = None
        if stop > start:
            share = list(pairs[start:stop]) if pairs is not None else None
            local = np.asarray(predict(list(texts[start:stop]), share))
        parts = [part for part in all_gather(local) if part is not None]
        if not parts:  # no rows at all: let predict say what it says for an empty input
            return predict(texts, pairs)
        return np.concatenate(parts, axis=0)

    return predict_sharded


# --- signals --------------------------------------------------------------------------------------------

_signal_group: Any = None


def agree_on_signal(requested: str | None) -> str | None:
    """The signal any process has received (its name), or None: every process must stop at the same step, or
    the ones still training wait for the ones saving. One small all-reduce per step, over gloo (on the CPU, so a
    GPU run does not wait for its GPU at every step)."""
    if world_size() <= 1 or not _group_ready():
        return requested
    import torch
    import torch.distributed as dist

    global _signal_group
    if _signal_group is None:  # created once, at the first step, by every process at the same point
        _signal_group = dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    number = int(signal.Signals[requested]) if requested else 0
    flag = torch.tensor([number], dtype=torch.int64)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=_signal_group)
    agreed = int(flag.item())
    return signal.Signals(agreed).name if agreed else None


# --- what the run records -----------------------------------------------------------------------------


def describe(batch_size: int, accumulation_steps: int) -> dict[str, Any]:
    """``env.json``'s ``distributed`` section: the processes, how they talk, and the batch they make together.

    ``train.batch_size`` is per device; an optimizer step sees ``batch_size x processes x accumulation_steps`` rows.
    """
    processes, local = world_size(), processes_per_node()
    backend = None
    if _group_ready():
        import torch.distributed as dist

        backend = str(dist.get_backend())
    sharding = next(
        (
            name
            for name, variable in (("fsdp", "ACCELERATE_USE_FSDP"), ("deepspeed", "ACCELERATE_USE_DEEPSPEED"))
            if os.environ.get(variable, "").lower() in ("1", "true", "yes")
        ),
        None,
    )
    return {
        "world_size": processes,
        "nodes": max(1, processes // local),
        "processes_per_node": local,
        "backend": backend,
        "sharding": sharding,
        "per_device_batch_size": batch_size,
        "gradient_accumulation_steps": accumulation_steps,
        "global_batch_size": batch_size * processes * accumulation_steps,
    }


__all__ = [
    "LAUNCHER_OPTIONS",
    "TIMEOUT_SECONDS",
    "agree_on_signal",
    "all_gather",
    "barrier",
    "describe",
    "destroy_process_group",
    "init_process_group",
    "is_launched",
    "is_main_process",
    "launch_command",
    "nodes",
    "on_main",
    "processes_per_node",
    "rank",
    "refuse_nested_launch",
    "require_shared_directory",
    "shard_bounds",
    "sharded",
    "without_launcher_options",
    "world_size",
]
