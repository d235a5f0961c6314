"""Device and precision choice: CUDA, then MPS, then CPU; bf16 where the hardware runs it natively and fast."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from distiltune.errors import ConfigError

#: CPU flags that mean native bf16 matmuls (AVX512-BF16 on Cooper Lake / Zen 4+, AMX on Sapphire Rapids+).
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: bf16 tensor cores arrived with Ampere (compute capability 8.0).
BF16_MIN_CUDA_CAPABILITY = (8, 0)
#: On a CPU the flags are necessary but not sufficient: bf16 is chosen only when a measured bf16 matmul runs at
#: least this much faster than fp32. Measured here: an AMD EPYC VM (AVX512-BF16) ran bf16 at 4.2x fp32, while a
#: Sapphire Rapids VM that exposes AVX512-BF16 but not AMX ran it at 0.6x, so a flag-only rule made training
#: there 3x slower.
MIN_CPU_BF16_SPEEDUP = 1.3


def resolve_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
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
    device = torch.device(device)
    return choose_precision(
        requested,
        device.type,
        cuda_capability=cuda_capability() if device.type == "cuda" else None,
        cpu_flags=cpu_flags() if device.type == "cpu" else frozenset(),
        cpu_bf16_speedup=(measure_bf16 or cpu_bf16_speedup) if device.type == "cpu" else None,
    )


def choose_precision(
    requested: str,
    device_type: str,
    cuda_capability: tuple[int, int] | None = None,
    cpu_flags: Iterable[str] = (),
    cpu_bf16_speedup: Callable[[], float] | None = None,
) -> str:
    """'auto' -> bf16 where the hardware runs it natively and fast, fp16 on older GPUs, else fp32.

    A function of the hardware facts so it can be tested with any capabilities. ``cpu_bf16_speedup`` measures
    bf16 against fp32 on this CPU; it is called only when the flags allow bf16 (None trusts the flags).
    """
    if requested != "auto":
        if requested == "fp16" and device_type != "cuda":
            raise ConfigError(
                f"train.precision fp16 needs a CUDA GPU (device is {device_type}).",
                "Use --set train.precision=auto (bf16 where the CPU supports it) or fp32.",
            )
        return requested
    if device_type == "cuda":
        if cuda_capability is not None and tuple(cuda_capability) >= BF16_MIN_CUDA_CAPABILITY:
            return "bf16"
        return "fp16"  # the Trainer pairs fp16 with a GradScaler (dynamic loss scaling)
    if device_type == "cpu":
        if not NATIVE_BF16_CPU_FLAGS & set(cpu_flags):
            return "fp32"
        if cpu_bf16_speedup is not None and cpu_bf16_speedup() < MIN_CPU_BF16_SPEEDUP:
            return "fp32"
        return "bf16"
    return "fp32"  # MPS: bf16 autocast support varies by macOS version; fp32 is the safe choice


def autocast_context(device: torch.device | str, precision: str) -> Any:
    device = torch.device(device)
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision == "fp16" and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()
