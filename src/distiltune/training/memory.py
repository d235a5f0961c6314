"""Peak memory of a training run: max allocated on CUDA, process RSS (sampled) on CPU and elsewhere.

RSS has no per-interval peak counter (``ru_maxrss`` is the whole process's lifetime), so a daemon thread
samples it every ``interval`` seconds while the block runs; the start and end values are sampled too.
"""

from __future__ import annotations

import threading
from typing import Any

import psutil
import torch


class PeakMemory:
    """``with PeakMemory(device) as peak: ...`` then ``peak.as_dict()`` for metrics.json."""

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.05) -> None:
        self.device = torch.device(device)
        self.interval = interval
        self.peak_bytes = 0
        self.start_bytes = 0
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def kind(self) -> str:
        return "cuda_max_allocated" if self.device.type == "cuda" else "rss"

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_bytes = int(torch.cuda.memory_allocated(self.device))
        else:
            self._sample()
            self.start_bytes = self.peak_bytes
            self._thread = threading.Thread(target=self._watch, name="distiltune-rss", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device))
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)

    def as_dict(self) -> dict[str, Any]:
        # Several runs in one process (compare, benchmarks) share its RSS: the increase over the start of the run is
        # the figure that compares methods; the absolute peak is what the machine needed.
        return {
            "peak_memory_mb": round(self.peak_bytes / 2**20, 1),
            "peak_memory_increase_mb": round(max(0, self.peak_bytes - self.start_bytes) / 2**20, 1),
            "peak_memory_kind": self.kind,
        }


__all__ = ["PeakMemory"]
