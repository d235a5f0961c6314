"""Dynamic batching: the inputs of concurrent requests merged into one model call.

Each input waits in one FIFO queue with its own future. A batch starts when the model is free and takes inputs
from the front of the queue until it holds ``max_batch_size`` of them, or one more would push its padded size
(rows x longest row) past ``max_batch_tokens``, or ``max_wait_ms`` have passed since its oldest input arrived
while the queue is empty. The batch runs in one worker thread, so the event loop keeps answering (``/health``,
new requests) meanwhile; each input's row goes back to its own future. An input whose future was cancelled
(its client went away) is dropped when it reaches the front.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger("distiltune")

#: ``run(texts, pairs, truncation_side, raw_scores) -> [n, labels]``: one model call over a batch.
RunBatch = Callable[[list[str], "list[str] | None", str, bool], np.ndarray]


@dataclass(frozen=True)
class BatchingSettings:
    max_batch_size: int = 32
    """Inputs per model call."""
    max_batch_tokens: int = 8192
    """Padded tokens (rows x longest row) per model call; a longer input goes alone."""
    max_wait_ms: float = 2.0
    """How long the oldest input of a batch that is not full waits for companions while the model is idle."""


@dataclass
class QueuedInput:
    text: str
    pair: str | None
    tokens: int
    truncation_side: str | None
    """"right"/"left" as the request asked, None: the run's own reading of long inputs."""
    raw_scores: bool
    future: asyncio.Future[np.ndarray]
    enqueued: float = field(default_factory=time.perf_counter)
    started: float = 0.0
    """When its batch started (perf_counter): queue time is ``started - enqueued``."""
    inference_seconds: float = 0.0


@dataclass(frozen=True)
class BatchReport:
    """What one model call did, for the metrics."""

    size: int
    seconds: float


class DynamicBatcher:
    """Merge queued inputs into model calls run one at a time in a worker thread; see the module docstring."""

    def __init__(
        self,
        run: RunBatch,
        settings: BatchingSettings,
        on_batch: Callable[[BatchReport], None] | None = None,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self._run = run
        self.settings = settings
        self._on_batch = on_batch
        self._on_drop = on_drop
        self._queue: collections.deque[QueuedInput] = collections.deque()
        self._arrived = asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="distiltune-infer")
        self._task: asyncio.Task[None] | None = None
        self._forming: list[QueuedInput] = []
        """The batch being collected: taken from the queue, still waiting for its model call."""

    @property
    def queue_depth(self) -> int:
        """Inputs waiting for their model call (cancelled ones included until they are dropped)."""
        return len(self._queue) + len(self._forming)

    @property
    def running(self) -> bool:
        """Started and not stopped or crashed."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="distiltune-batcher")
        self._task.add_done_callback(_log_crash)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for queued in [*self._forming, *self._queue]:
            if not queued.future.done():
                queued.future.cancel()
        self._queue.clear()
        self._forming = []
        self._executor.shutdown(wait=True)

    def submit(
        self,
        texts: list[str],
        pairs: list[str] | None,
        tokens: list[int],
        truncation_side: str | None,
        raw_scores: bool,
    ) -> list[QueuedInput]:
        """Queue inputs; await each one's ``future`` for its row of scores (cancel it to drop the input)."""
        loop = asyncio.get_running_loop()
        queued = [
            QueuedInput(
                text=text,
                pair=pairs[index] if pairs is not None else None,
                tokens=tokens[index],
                truncation_side=truncation_side,
                raw_scores=raw_scores,
                future=loop.create_future(),
            )
            for index, text in enumerate(texts)
        ]
        self._queue.extend(queued)
        self._arrived.set()
        return queued

    async def _serve(self) -> None:
        while True:
            batch = await self._collect()
            self._forming = []
            if batch:
                await self._execute(batch)

    async def _collect(self) -> list[QueuedInput]:
        """The next batch: wait for a first input, then take more until the batch is full or its wait is over."""
        settings = self.settings
        batch = self._forming = []
        longest = 0
        while True:
            while self._queue:
                queued = self._queue[0]
                if queued.future.done():  # its client went away
                    self._queue.popleft()
                    if self._on_drop is not None:
                        self._on_drop(1)
                    continue
                candidate = max(longest, queued.tokens)
                if batch and (
                    len(batch) >= settings.max_batch_size or candidate * (len(batch) + 1) > settings.max_batch_tokens
                ):
                    return batch
                batch.append(self._queue.popleft())
                longest = candidate
            if len(batch) >= settings.max_batch_size:
                return batch
            self._arrived.clear()
            if not batch:
                await self._arrived.wait()
                continue
            remaining = batch[0].enqueued + settings.max_wait_ms / 1000 - time.perf_counter()
            if remaining <= 0:
                return batch
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                return batch

    async def _execute(self, batch: list[QueuedInput]) -> None:
        """Run the batch, one model call per (truncation side, raw scores) group, and hand each row back."""
        loop = asyncio.get_running_loop()
        groups: dict[tuple[str, bool], list[QueuedInput]] = {}
        for queued in batch:
            groups.setdefault((queued.truncation_side, queued.raw_scores), []).append(queued)
        for (truncation_side, raw_scores), members in groups.items():
            texts = [queued.text for queued in members]
            pairs = [queued.pair or "" for queued in members] if members[0].pair is not None else None
            started = time.perf_counter()
            for queued in members:
                queued.started = started
            try:
                rows = await loop.run_in_executor(self._executor, self._run, texts, pairs, truncation_side, raw_scores)
            except Exception as err:  # a failed model call fails its inputs' requests, not the batcher
                logger.exception("Inference failed on a batch of %d inputs", len(members))
                for queued in members:
                    if not queued.future.done():
                        queued.future.set_exception(err)
                continue
            seconds = time.perf_counter() - started
            if self._on_batch is not None:
                self._on_batch(BatchReport(size=len(members), seconds=seconds))
            for queued, row in zip(members, rows, strict=True):
                queued.inference_seconds = seconds
                if not queued.future.done():
                    queued.future.set_result(row)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("The batcher stopped: %r; requests will time out", task.exception())
