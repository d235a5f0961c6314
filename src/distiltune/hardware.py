"""Device and precision choice: CUDA, then MPS, then CPU; bf16 where the hardware runs it natively and fast."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def resolve_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        from distiltune.errors import ConfigError

        raise ConfigError("train.device is cuda, but no CUDA GPU is visible.", "Use --set train.device=auto.")
    return torch.device(requested)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags from /proc/cpuinfo (empty where it does not exist, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: the CPU has bf16 instructions (whether they are fast is :func:`cpu_bf16_speedup`)."""
    from distiltune.speed import NATIVE_BF16_CPU_FLAGS

    return bool(cpu_flags() & NATIVE_BF16_CPU_FLAGS)


@functools.cache
def cpu_bf16_speedup(size: int = 1024, repeats: int = 5) -> float:
    """fp32 matmul time over bf16 matmul time on this CPU, with torch's thread count (best of ``repeats``).

    About 0.1 s, once per process. Virtual machines can report AVX512-BF16 and still run bf16 slower than
    fp32 (no AMX passed through), so the choice of bf16 rests on this measurement, not on the flags alone.
    """

    def best_seconds(dtype: torch.dtype) -> float:
        generator = torch.Generator().manual_seed(0)
        left = torch.randn(size, size, generator=generator).to(dtype)
        right = torch.randn(size, size, generator=generator).to(dtype)
        torch.mm(left, right)  # the first call builds the kernel
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            torch.mm(left, right)
            timings.append(time.perf_counter() - started)
        return min(timings)

    return best_seconds(torch.float32) / best_seconds(torch.bfloat16)


def cuda_capability() -> tuple[int, int] | None:
    """The compute capability of the current CUDA device, or None without CUDA."""
    if not torch.cuda.is_available():
        return None
    return tuple(torch.cuda.get_device_capability())  # type: ignore[return-value]


def resolve_precision(
    requested: str, device: torch.device | str, measure_bf16: Callable[[], float] | None = None
) -> str:
    """'auto' picks bf16 on Ampere+ GPUs and on CPUs where bf16 is native and measured faster, fp16 on older
    GPUs, else fp32. ``measure_bf16`` replaces :func:`cpu_bf16_speedup` (e.g. to record what it measured)."""
    from distiltune.speed import choose_precision

    device = torch.device(device)
    return choose_precision(
        requested,
        device.type,
        cuda_capability=cuda_capability() if device.type == "cuda" else None,
        cpu_flags=cpu_flags() if device.type == "cpu" else frozenset(),
        cpu_bf16_speedup=(measure_bf16 or cpu_bf16_speedup) if device.type == "cpu" else None,
    )


def autocast_context(device: torch.device | str, precision: str) -> Any:
    device = torch.device(device)
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision == "fp16" and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()
