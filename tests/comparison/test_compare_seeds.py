"""``compare --seeds 3`` runs three genuinely different trainings: each seed draws its own head initialisation and
its own data order (while the splits stay the same, see test_compare.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import distiltune
from conftest import save_tiny_encoder
from distiltune.training import pipeline, trainer


def base_checkpoint(directory: Path) -> Path:
    """A tiny encoder saved without its classifier, as base checkpoints on the hub are: every run initialises its
    own head (a checkpoint that has one with the right number of labels would be loaded as is, by design)."""
    from safetensors.torch import load_file, save_file

    save_tiny_encoder("distilbert", directory)
    weights = load_file(directory / "model.safetensors")
    head = ("classifier.", "pre_classifier.")
    save_file({k: v for k, v in weights.items() if not k.startswith(head)}, directory / "model.safetensors")
    return directory


def test_three_seeds_give_three_head_initialisations_and_three_data_orders(
    fast_overrides: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    heads: list[torch.Tensor] = []
    orders: dict[int, list[int]] = {}
    real_build_model = pipeline.build_model
    real_iter = trainer.EpochSeededSampler.__iter__

    def recording_build_model(prepared: Any) -> Any:
        model, parameters = real_build_model(prepared)
        heads.append(model.classifier.weight.detach().clone())
        return model, parameters

    def recording_iter(self: trainer.EpochSeededSampler) -> Any:
        order = list(real_iter(self))
        if self.epoch == 0:
            orders.setdefault(self.seed, order)
        return iter(order)

    monkeypatch.setattr(pipeline, "build_model", recording_build_model)
    monkeypatch.setattr(trainer.EpochSeededSampler, "__iter__", recording_iter)
    overrides = {**fast_overrides, "model.name": str(base_checkpoint(tmp_path / "base")), "train.epochs": 1}
    comparison = distiltune.compare(None, overrides, methods=["full"], seeds=3, output_dir=tmp_path / "compare")
    assert [record.seed for record in comparison.runs] == [42, 43, 44]
    assert all(record.status == "completed" for record in comparison.runs)
    assert len(heads) == 3 and len(orders) == 3
    assert all(not torch.equal(heads[i], heads[j]) for i in range(3) for j in range(i + 1, 3))
    assert len({tuple(order) for order in orders.values()}) == 3
    assert all(sorted(order) == sorted(orders[42]) for order in orders.values())  # same rows, other order
