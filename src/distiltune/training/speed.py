"""Which speed features a run uses, decided in one place from the config and the hardware.

Every feature is on by default where it is safe and can be switched off with a ``train.*`` key. The
resolved :class:`SpeedPlan` is written to the run's ``env.json`` (``speed``), so a run records what it used.

| feature            | default                                    | off switch                       |
|--------------------|--------------------------------------------|----------------------------------|
| dynamic padding    | on                                         | ``train.dynamic_padding=false``  |
| length grouping    | on (training batches)                      | ``train.group_by_length=false``  |
| length group size  | 4 batches sorted together                  | ``train.length_group_batches=N`` |
| length sorting     | on (evaluation / prediction)               | ``train.sort_by_length=false``   |
| tokenization cache | on                                         | ``train.cache_tokenized=false``  |
| bf16 / fp16        | bf16 where measured faster, fp16 on older GPUs | ``train.precision=fp32``     |
| SDPA attention     | on where the model supports it             | ``train.sdpa=false``             |
| fast attention     | attention-prob dropout off (fused SDPA)    | ``train.fast_attention=false``   |
| fused AdamW        | on                                         | ``train.fused_optimizer=false``  |
| async steps        | off: no measured win (skips the per-step GPU sync) | ``train.async_steps=true``      |
| loader workers     | GPU: 4 at batches >= 768 rows, else 0; pinned memory; CPU: 0 | ``train.dataloader_workers=N`` |
| eval batch size    | Trainer eval: CPU 8, GPU 64                | ``train.eval_batch_size=N``      |
| inference batches  | CPU: <= 64 rows, <= 2048 padded tokens (ONNX 512); GPU: 64 | ``train.eval_batch_tokens=0`` |
| torch.compile      | off (opt-in: ``--compile``)                | ``train.compile=true``           |
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from distiltune import hardware
from distiltune.inference.batched import resolve_eval_batch_size, resolve_inference_batching

if TYPE_CHECKING:
    from distiltune.config import TrainConfig


@dataclass(frozen=True)
class SpeedPlan:
    """The speed features a run uses (resolved: no 'auto' left)."""

    device: str
    precision: str
    """bf16, fp16 (with loss scaling, GPU only) or fp32."""
    cpu_bf16_speedup: float | None
    """fp32 / bf16 matmul time measured on this CPU when ``precision`` was auto and the flags allow bf16."""
    dynamic_padding: bool
    pad_to_multiple_of: int | None
    """8 on CUDA, so padded shapes map onto tensor-core tiles."""
    group_by_length: bool
    length_group_batches: int | None
    """Batches sorted by length together (None: transformers' rule); only with ``group_by_length``."""
    sort_by_length: bool
    cache_tokenized: bool
    attn_implementation: str | None
    """None lets transformers pick (SDPA where the architecture supports it); 'eager' forces the plain kernel."""
    fast_attention: bool
    optimizer: str
    """A transformers ``OptimizerNames`` value: adamw_torch_fused or adamw_torch."""
    async_steps: bool
    """False keeps the Trainer's per-step NaN/inf check of the logged loss (a GPU sync every step)."""
    dataloader_workers: int
    pin_memory: bool
    eval_batch_size: int
    """Batch size of the Trainer's evaluation during training."""
    inference_batch_size: int
    """Row cap of the batches that evaluate the best model and predict (``distiltune.inference.batched``)."""
    inference_batch_tokens: int | None
    """Padded-token budget of those batches (rows x longest row); None: rows only."""
    compile: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: On a GPU, loader workers pay off only when collating a batch takes long: measured at 768 rows per batch, not at 32.
WORKERS_MIN_BATCH_ROWS = 768


def default_dataloader_workers(device_type: str, batch_size: int = 16, cpu_count: int | None = None) -> int:
    """CPU: none, because workers take the cores the matmuls need. GPU: up to 4 workers at batches of
    :data:`WORKERS_MIN_BATCH_ROWS` rows or more, else none; each the faster of the two in the measurements.

    Measured on an H200 (DistilBERT-base, IMDb, bf16, ``benchmarks/training_mfu.py``):
    at 128 tokens and 768 rows per batch, 4 workers trained at 9,211 samples/s
    (benchmarks/results/training_mfu_h200_2026-11-30.json) and the main process alone at 6,862
    (benchmarks/results/training_mfu_h200_2026-11-30_collator_0workers.json): collating 768 rows takes longer than
    the step, and the Trainer waits for the GPU before fetching the next batch. At 32 rows per batch the main process
    alone was faster: 1,276 against 303 samples/s at 128 tokens and 876 against 261 at 512 (the first file), where
    the naive pipeline ran 757 and 252. Batch sizes in between were not measured; they get no workers, the choice
    that never lost to the naive pipeline.
    """
    if device_type != "cuda" or batch_size < WORKERS_MIN_BATCH_ROWS:
        return 0
    cpu_count = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(0, min(4, cpu_count // 2))


def fused_adamw_supported(device_type: str) -> bool:
    """torch ships a fused AdamW for CUDA and MPS, and for CPU from 2.4 on."""
    import torch

    if device_type in ("cuda", "mps"):
        return True
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 4)


def plan_speed(train: TrainConfig, device: Any) -> SpeedPlan:
    """Resolve the ``train.*`` speed switches against the device the run uses."""
    import torch

    device_type = torch.device(device).type
    measured: list[float] = []

    def measure_bf16() -> float:
        measured.append(hardware.cpu_bf16_speedup())  # once per process (cached), only where it decides
        return measured[-1]

    precision = hardware.resolve_precision(train.precision, device, measure_bf16)
    workers = train.dataloader_workers
    batching = resolve_inference_batching(train.eval_batch_size, train.eval_batch_tokens, device_type)
    return SpeedPlan(
        device=str(device),
        precision=precision,
        cpu_bf16_speedup=round(measured[0], 2) if measured else None,
        dynamic_padding=train.dynamic_padding,
        pad_to_multiple_of=8 if device_type == "cuda" and train.dynamic_padding else None,
        group_by_length=train.group_by_length,
        length_group_batches=train.length_group_batches if train.group_by_length else None,
        sort_by_length=train.sort_by_length,
        cache_tokenized=train.cache_tokenized,
        attn_implementation=None if train.sdpa else "eager",
        fast_attention=train.fast_attention,
        optimizer="adamw_torch_fused"
        if train.fused_optimizer and fused_adamw_supported(device_type)
        else "adamw_torch",
        async_steps=train.async_steps,
        dataloader_workers=workers
        if workers is not None
        else default_dataloader_workers(device_type, train.batch_size),
        pin_memory=device_type == "cuda",
        eval_batch_size=resolve_eval_batch_size(train.eval_batch_size, device_type),
        inference_batch_size=batching.batch_size,
        inference_batch_tokens=batching.max_batch_tokens,
        compile=train.compile,
    )


__all__ = ["WORKERS_MIN_BATCH_ROWS", "SpeedPlan", "default_dataloader_workers", "fused_adamw_supported", "plan_speed"]
