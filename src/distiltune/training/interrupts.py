"""Ctrl-C and SIGTERM: finish the current step, save a checkpoint, stop, and say how to resume.

The first SIGINT/SIGTERM during training only sets a flag; :class:`InterruptCallback` sees it at the next
step boundary, asks the Trainer to save a checkpoint and stop, and raises :class:`RunInterrupted` once the
checkpoint is on disk. A second signal (or one that arrives outside the training loop, where there is no
step to finish) raises ``KeyboardInterrupt`` at once; the newest complete checkpoint is still there.

With several processes (torchrun forwards a signal to each) they agree at every step boundary on whether any has
received one, so all of them save the same checkpoint and stop at the same step.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

from transformers import TrainerCallback

from distiltune.training import distributed

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(KeyboardInterrupt):
    """Training stopped on a signal after saving a checkpoint. ``str()`` is the message for the user."""

    def __init__(self, message: str, step: int | None = None) -> None:
        super().__init__(message)
        self.step = step


class InterruptHandler:
    """Installs SIGINT/SIGTERM handlers while a run lasts (main thread only) and records the first signal."""

    def __init__(self, announce: bool = True) -> None:
        self.announce = announce
        """False in the other processes of a multi-process run: the main process says it once."""
        self.requested: str | None = None
        self.loop_active = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> InterruptHandler:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested is not None:
            raise KeyboardInterrupt(f"{name} again: stopped at once")
        if not self.loop_active:
            raise KeyboardInterrupt(f"{name}: stopped outside the training loop")
        self.requested = name
        if not self.announce:
            return
        # No logging here: a handler can run in the middle of a log call. stderr is safe enough.
        sys.stderr.write(
            f"\n{name} received: saving a checkpoint after this step, then stopping "
            "(press Ctrl-C again to stop at once).\n"
        )
        sys.stderr.flush()


class InterruptCallback(TrainerCallback):
    """Turns a pending interrupt into "save a checkpoint now and stop" at the next step boundary."""

    def __init__(self, handler: InterruptHandler) -> None:
        self.handler = handler
        self.agreed: str | None = None
        """Under DDP: the signal every process has agreed to stop on (one process may not have received it)."""

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.handler.loop_active = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.handler.loop_active = False

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        requested = self.handler.requested
        if args.world_size > 1:  # a collective: a process that saves alone would wait for the others forever
            requested = self.agreed = distributed.agree_on_signal(requested)
        if requested:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # Under DDP only the agreed signal counts: one that reached this process after the step boundary is acted on
        # at the next one, by all processes together.
        requested = self.agreed if args.world_size > 1 else self.handler.requested
        if requested:
            self.handler.loop_active = False
            raise RunInterrupted(f"{requested} at step {state.global_step}", step=state.global_step)


__all__ = ["InterruptCallback", "InterruptHandler", "RunInterrupted"]
