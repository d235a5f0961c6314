"""``train.deterministic`` (``--deterministic``): ask torch for deterministic kernels while a run lasts.

CPU training is deterministic without it: the same config, seed and data give bit-identical metrics. On
CUDA some kernels (atomic-add reductions in backward passes, cuBLAS workspaces, fused attention backward)
are not; this mode makes torch pick deterministic implementations where they exist and warn where they do
not. It does not set ``CUDA_LAUNCH_BLOCKING`` (as ``transformers.enable_full_determinism`` does), which
would serialise every kernel launch. The previous global settings are restored when the run ends, so
library users are not left with a slower torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

#: cuBLAS needs a fixed workspace for reproducible matmuls (https://docs.nvidia.com/cuda/cublas/#results-reproducibility).
DETERMINISTIC_ENV = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8", "FLASH_ATTENTION_DETERMINISTIC": "1"}


@contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    import torch

    previous_env = {key: os.environ.get(key) for key in DETERMINISTIC_ENV}
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    os.environ.update(DETERMINISTIC_ENV)
    # warn_only: an op without a deterministic kernel warns instead of failing a run hours in.
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[2], previous[3]
        for key, value in previous_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


__all__ = ["deterministic_mode"]
