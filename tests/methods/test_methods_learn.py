"""Every method that trains really learns, and trains only what it claims to.

On keyword-separable data each method (every registered method that trains, plus the MLP head) must beat the same
run at a learning rate of effectively zero (1e-12: the config refuses 0) by a clear margin on the test split (90%
accuracy or more, and at most half the test loss), and every parameter it leaves frozen must end the run
bit-identical while the ones it trains move.

The registered methods start from ``keyword_encoders``: tiny encoders that already know the keywords, with a zeroed
classifier, as a pretrained checkpoint would be (a frozen random encoder gives LoRA, soft prompts or a linear probe
nothing to learn from). The MLP head is freshly initialised: on good features a random head can score anything by
luck, which is why the margin is also asked of the loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback

import distiltune
from distiltune.methods import get_method, method_names
from methods.test_methods import first_supported_architecture

#: Learning rates that let each method learn the keywords in two epochs on the tiny encoders.
LEARNING_RATES = {"full": 3e-3, "lora": 1e-2, "prompt": 3e-2, "prefix": 3e-2, "head": 1e-2}
MIN_ACCURACY = 0.9
"""Test accuracy a learning run must reach; the same run at learning rate ~0 scores 0.5 (zeroed classifier)."""
MAX_LOSS_RATIO = 0.5
"""A learning run's test loss must be at most this fraction of the same run's at learning rate ~0."""


def learning_cases() -> list[tuple[str, dict[str, Any]]]:
    cases = [
        (name, {"method.name": name})
        for name in method_names()
        if get_method(name).trains and get_method(name).uses_encoder
    ]
    return [*cases, ("head+mlp", {"method.name": "head", "model.head": "mlp", "model.pooling": "mean"})]


class ParameterSnapshots(TrainerCallback):
    """The model's parameters when training begins and when it ends (detached copies, by name)."""

    def __init__(self) -> None:
        self.before: dict[str, torch.Tensor] = {}
        self.after: dict[str, torch.Tensor] = {}
        self.trainable: set[str] = set()

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.before = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.trainable = {name for name, p in model.named_parameters() if p.requires_grad}

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.after = {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize(("name", "overrides"), learning_cases(), ids=[case[0] for case in learning_cases()])
def test_each_method_learns_and_trains_only_what_it_claims(
    name: str,
    overrides: dict[str, Any],
    keyword_data: Path,
    keyword_encoders: dict[str, Path],
    tmp_path: Path,
) -> None:
    method = overrides["method.name"]
    base = {
        **overrides,
        "model.name": str(keyword_encoders[first_supported_architecture(method, keyword_encoders)]),
        "data.dataset": str(keyword_data),
        "data.max_length": 16,
        "train.epochs": 2,
        "train.batch_size": 8,
        "train.precision": "fp32",
        "train.warmup_fraction": 0.0,
        "run.output_dir": str(tmp_path),
    }
    if method in ("prompt", "prefix"):
        base["method.num_virtual_tokens"] = 4
    snapshots = ParameterSnapshots()
    learned = distiltune.train(None, {**base, "train.lr": LEARNING_RATES[method]}, callbacks=[snapshots])
    still = distiltune.train(None, {**base, "train.lr": 1e-12})
    learned_test, still_test = learned.metrics["test"], still.metrics["test"]
    scores = (name, learned_test["accuracy"], learned_test["loss"], still_test["accuracy"], still_test["loss"])
    assert learned_test["accuracy"] >= MIN_ACCURACY, scores
    assert learned_test["loss"] <= MAX_LOSS_RATIO * still_test["loss"], scores

    frozen = [n for n in snapshots.before if n not in snapshots.trainable]
    changed_frozen = [n for n in frozen if not torch.equal(snapshots.before[n], snapshots.after[n])]
    assert not changed_frozen, f"{name} changed frozen parameters: {changed_frozen[:5]}"
    moved = [n for n in snapshots.trainable if not torch.equal(snapshots.before[n], snapshots.after[n])]
    assert moved, f"{name} trained nothing"
    trainable_count = sum(snapshots.before[n].numel() for n in snapshots.trainable if ".original_module." not in n)
    assert trainable_count == learned.metrics["trainable_params"], name
    if method != "full":
        assert frozen, f"{name} claims to freeze part of the model but froze nothing"
