"""Class weights, weighted cross-entropy and focal loss (distiltune.training.losses), and their adapter inside a
real tiny Hugging Face Trainer run, gradient accumulation included."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distiltune.errors import ConfigError, DataError
from distiltune.tasks.single_label import classification_loss
from distiltune.training.losses import (
    class_counts,
    imbalance_warning,
    make_compute_loss,
    resolve_class_weights,
)

NAMES = ["negative", "positive", "neutral"]
TRAIN_LABELS = [0] * 6 + [1] * 3 + [2] * 1


# --- class weights -------------------------------------------------------------------------------------------


def test_balanced_weights_follow_scikit_learn() -> None:
    from sklearn.utils.class_weight import compute_class_weight

    weights = resolve_class_weights("balanced", NAMES, TRAIN_LABELS)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=np.array(TRAIN_LABELS))
    np.testing.assert_allclose(weights, expected)
    assert weights == pytest.approx([10 / 18, 10 / 9, 10 / 3])


def test_weight_specs() -> None:
    assert resolve_class_weights("none", NAMES, TRAIN_LABELS) is None
    assert resolve_class_weights(None, NAMES, TRAIN_LABELS) is None
    assert resolve_class_weights({"neutral": 4, "positive": 2.5}, NAMES, TRAIN_LABELS) == [1.0, 2.5, 4.0]
    assert resolve_class_weights({1: 3.0}, ["0", "1"], [0, 1]) == [1.0, 3.0]  # YAML reads `{1: 3}` with int keys


def test_bad_weight_specs_are_one_line_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown label 'postive'.*negative, positive, neutral") as error:
        resolve_class_weights({"postive": 2.0}, NAMES, TRAIN_LABELS)
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="positive number"):
        resolve_class_weights({"positive": 0}, NAMES, TRAIN_LABELS)
    with pytest.raises(ConfigError, match="none, balanced or a mapping"):
        resolve_class_weights("inverse", NAMES, TRAIN_LABELS)
    with pytest.raises(DataError, match="neutral have no training rows"):
        resolve_class_weights("balanced", NAMES, [0, 1, 1])


def test_class_counts() -> None:
    assert class_counts(TRAIN_LABELS, 3) == [6, 3, 1]
    assert class_counts([1, 1], 3) == [0, 2, 0]


def test_imbalance_warning_names_the_options() -> None:
    assert imbalance_warning([50, 10], ["negative", "positive"]) is None  # 5x exactly: not more than 5x
    message = imbalance_warning([51, 10], ["negative", "positive"])
    assert message is not None and "'negative' has 5.1x the rows of 'positive'" in message
    for option in ("train.class_weights=balanced", "train.loss=focal", "--tune-threshold"):
        assert option in message
    multi = imbalance_warning([60, 30, 10], NAMES)
    assert multi is not None and "--tune-threshold" not in multi  # thresholds are for binary tasks
    assert "no rows" in (imbalance_warning([5, 0], ["a", "b"]) or "")


# --- the loss ------------------------------------------------------------------------------------------------

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0], [1.0, 1.0, 1.0]])
LABELS = torch.tensor([0, 2, 1, 2])
WEIGHTS = [0.5, 2.0, 3.0]


def test_class_weights_change_the_loss_as_computed_by_hand() -> None:
    log_p = [
        math.log(math.exp(LOGITS[i, LABELS[i]].item()) / sum(math.exp(v) for v in LOGITS[i].tolist()))
        for i in range(4)
    ]
    weighted = [-WEIGHTS[int(LABELS[i])] * log_p[i] for i in range(4)]
    assert classification_loss(LOGITS, LABELS).item() == pytest.approx(-sum(log_p) / 4, rel=1e-6)
    assert classification_loss(LOGITS, LABELS, WEIGHTS).item() == pytest.approx(sum(weighted) / 4, rel=1e-6)
    assert classification_loss(LOGITS, LABELS, WEIGHTS, reduction="sum").item() == pytest.approx(
        F.cross_entropy(LOGITS, LABELS, weight=torch.tensor(WEIGHTS), reduction="sum").item(), rel=1e-6
    )
    # "mean" divides by the rows (4), not by the sum of their weights (0.5 + 3 + 2 + 3) as torch's weighted mean does.
    torch_mean = F.cross_entropy(LOGITS, LABELS, weight=torch.tensor(WEIGHTS)).item()
    assert torch_mean == pytest.approx(sum(weighted) / 8.5, rel=1e-6)


def test_focal_with_gamma_zero_is_cross_entropy() -> None:
    for weights in (None, WEIGHTS):
        focal = classification_loss(LOGITS, LABELS, weights, kind="focal", gamma=0.0)
        plain = classification_loss(LOGITS, LABELS, weights)
        assert focal.item() == pytest.approx(plain.item(), rel=1e-7)
    assert classification_loss(LOGITS, LABELS).item() == pytest.approx(F.cross_entropy(LOGITS, LABELS).item())


def test_focal_loss_by_hand_and_down_weights_easy_rows() -> None:
    gamma = 2.0
    p = torch.softmax(LOGITS, dim=-1)[torch.arange(4), LABELS]
    expected = (-((1 - p) ** gamma) * p.log()).mean()
    focal = classification_loss(LOGITS, LABELS, kind="focal", gamma=gamma)
    assert focal.item() == pytest.approx(expected.item(), rel=1e-6)
    per_row_ce = classification_loss(LOGITS, LABELS, reduction="none")
    per_row_focal = classification_loss(LOGITS, LABELS, kind="focal", gamma=gamma, reduction="none")
    ratio = per_row_focal / per_row_ce
    assert int(ratio.argmin()) == int(p.argmax())  # the most confident right row loses most


def test_focal_gradient_is_finite_at_certainty() -> None:
    logits = torch.tensor([[200.0, -200.0], [0.0, 0.0]], requires_grad=True)
    loss = classification_loss(logits, torch.tensor([0, 1]), kind="focal", gamma=0.5)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_ignored_rows_and_low_precision_logits() -> None:
    labels = torch.tensor([0, -100, 1, 2])
    loss = classification_loss(LOGITS, labels, WEIGHTS)
    kept = classification_loss(LOGITS[[0, 2, 3]], torch.tensor([0, 1, 2]), WEIGHTS)
    assert loss.item() == pytest.approx(kept.item(), rel=1e-6)
    low = classification_loss(LOGITS.to(torch.bfloat16), LABELS)
    assert low.dtype == torch.float32


def test_bad_loss_settings() -> None:
    with pytest.raises(ConfigError, match="train.loss"):
        classification_loss(LOGITS, LABELS, kind="hinge")
    with pytest.raises(ConfigError, match="focal_gamma"):
        make_compute_loss(kind="focal", gamma=-1.0)
    with pytest.raises(ValueError, match="3 class weights"):
        classification_loss(LOGITS, LABELS, [1.0, 2.0])


def test_compute_loss_normalises_by_the_accumulated_item_count() -> None:
    compute = make_compute_loss(WEIGHTS)
    outputs = {"logits": LOGITS}
    total = classification_loss(LOGITS, LABELS, WEIGHTS, reduction="sum")
    # Two micro-batches of one optimizer step, 4 + 4 items: each returns its sum / 8.
    assert compute(outputs, LABELS, num_items_in_batch=torch.tensor(8)).item() == pytest.approx(total.item() / 8)
    assert compute(outputs, LABELS).item() == pytest.approx(total.item() / 4)  # no count: the batch mean
    assert compute((LOGITS,), LABELS, num_items_in_batch=4).item() == pytest.approx(total.item() / 4)


# --- inside a real Trainer -----------------------------------------------------------------------------------

TEXTS = [
    "what a wonderful day",
    "new graphics card",
    "sports news game",
    "team market",
    "stock price computer",
    "software science",
    "space world war",
    "election day",
    "a wonderful game",
    "new team",
]
TEXT_LABELS = [0, 1, 0, 1, 1, 0, 1, 0, 0, 1]


def train_tiny(
    model_dir: str,
    tmp_path: Path,
    batch_size: int,
    accumulation: int,
    compute_loss_func: Any = None,
    steps: int = 2,
) -> tuple[list[float], torch.Tensor, Any]:
    """A few SGD steps of the tiny DistilBERT without dropout: the same rows in the same order for every batch
    layout (the random sampler draws one permutation of the dataset), so only the loss scaling can differ."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoded = tokenizer(TEXTS, padding="max_length", max_length=12, truncation=True)
    dataset = Dataset.from_dict({**encoded, "labels": TEXT_LABELS})
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0
    )
    args = TrainingArguments(
        output_dir=str(tmp_path / f"out-{batch_size}-{accumulation}-{compute_loss_func is not None}"),
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=3,
        gradient_accumulation_steps=accumulation,
        max_steps=steps,
        learning_rate=0.5,
        optim="sgd",  # unlike Adam, SGD steps scale with the loss: a mis-scaled loss shows in the weights
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=1,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, compute_loss_func=compute_loss_func)
    trainer.train()
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    return losses, weights, trainer


def test_adapter_makes_gradient_accumulation_match_one_big_batch(tiny_model: str, tmp_path: Path) -> None:
    # Reference: one batch of 8, then the remaining 2 rows (the step the Trainer counts as 2 items).
    reference_losses, reference_weights, _ = train_tiny(tiny_model, tmp_path, 8, 1)
    losses, weights, _ = train_tiny(tiny_model, tmp_path, 4, 2, make_compute_loss())
    assert losses == pytest.approx(reference_losses, rel=1e-5)
    assert torch.allclose(weights, reference_weights, atol=1e-6)
    # Without the adapter the sequence-classification head takes a per-micro-batch mean, yet the Trainer skips its
    # division by the accumulation steps (it sees `**kwargs` in forward): the first step's loss and gradient double
    # (transformers 5.23; huggingface/transformers#47688). This is what the adapter fixes.
    plain_losses, plain_weights, _ = train_tiny(tiny_model, tmp_path, 4, 2)
    assert plain_losses[0] == pytest.approx(2 * reference_losses[0], rel=1e-5)
    assert not torch.allclose(plain_weights, reference_weights, atol=1e-5)


def test_weighted_adapter_trains_and_evaluates_with_the_weighted_loss(tiny_model: str, tmp_path: Path) -> None:
    weights = [1.0, 4.0]
    _, big_batch, _ = train_tiny(tiny_model, tmp_path, 8, 1, make_compute_loss(weights))
    _, accumulated, trainer = train_tiny(tiny_model, tmp_path, 4, 2, make_compute_loss(weights))
    _, unweighted, _ = train_tiny(tiny_model, tmp_path, 8, 1, make_compute_loss())
    assert torch.allclose(accumulated, big_batch, atol=1e-6)
    assert not torch.allclose(big_batch, unweighted, atol=1e-5)  # the weights did change training
    # Evaluation (batches of 3, the last one of 1) reports the weighted mean over all rows.
    dataset = trainer.train_dataset
    eval_loss = trainer.evaluate(dataset)["eval_loss"]
    model = trainer.model.eval()
    with torch.no_grad():
        logits = model(
            input_ids=torch.tensor(dataset["input_ids"]), attention_mask=torch.tensor(dataset["attention_mask"])
        ).logits
    expected = classification_loss(logits, torch.tensor(TEXT_LABELS), weights)
    assert eval_loss == pytest.approx(expected.item(), rel=1e-5)


# --- through distiltune.train -----------------------------------------------------------------------------------


def dropout_free(model_dir: str, target: Path) -> str:
    """A copy of the tiny encoder without dropout, so that only the batch layout can change a step."""
    import json
    import shutil

    shutil.copytree(model_dir, target)
    config = json.loads((target / "config.json").read_text())
    config.update({"dropout": 0.0, "attention_dropout": 0.0, "seq_classif_dropout": 0.0})
    (target / "config.json").write_text(json.dumps(config))
    return str(target)


@pytest.fixture
def logged_losses(tiny_model: str, tmp_path: Path) -> Any:
    """``logged_losses(method="full", **train_keys)``: the training losses a 2-step run of the dropout-free tiny
    encoder on tiny.csv logs (every step), batches of 8 unless the keys say otherwise."""
    from transformers import TrainerCallback

    import distiltune

    model = dropout_free(tiny_model, tmp_path / "encoder")
    fixtures = Path(__file__).resolve().parent.parent / "fixtures"

    class Losses(TrainerCallback):
        def __init__(self) -> None:
            self.values: list[float] = []

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                self.values.append(logs["loss"])

    def run(method: str = "full", **train: Any) -> list[float]:
        losses = Losses()
        distiltune.train(
            None,
            {
                "model.name": model,
                "method.name": method,
                "data.dataset": str(fixtures / "tiny.csv"),
                "data.text_column": "review",
                "data.label_column": "sentiment",
                "data.max_length": 16,
                "data.validation_fraction": 0.25,
                "train.max_steps": 2,
                "train.batch_size": 8,
                "train.lr": 1e-3,
                "train.precision": "fp32",
                "train.logging_steps": 1,
                "run.output_dir": str(tmp_path / "runs"),
                **{f"train.{key}": value for key, value in train.items()},
            },
            callbacks=[losses],
        )
        return losses.values

    return run


def test_accumulating_two_batches_of_4_trains_like_one_batch_of_8(logged_losses: Any) -> None:
    """train.gradient_accumulation_steps > 1 installs the loss adapter: the logged losses (and so the gradients that
    step after them) of 2 x 4 rows equal those of one batch of 8 rows, which trains with the model's own loss."""
    one_batch = logged_losses()
    assert len(one_batch) == 2
    assert logged_losses(batch_size=4, gradient_accumulation_steps=2) == pytest.approx(one_batch, rel=1e-5)


def test_class_weights_reach_the_trainers_loss(logged_losses: Any) -> None:
    """Weight 3 on every label is the plain loss times 3 (by hand: each row's cross-entropy times its weight, over
    the rows); weight 1 on every label is the model's own loss, through the adapter."""
    plain = logged_losses()
    tripled = logged_losses(class_weights={"neg": 3, "pos": 3}, max_steps=1)
    assert tripled[0] == pytest.approx(3 * plain[0], rel=1e-5)
    assert logged_losses(class_weights={"neg": 1.0, "pos": 1.0}) == pytest.approx(plain, rel=1e-5)


@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_class_weights_reach_the_loss_of_the_peft_methods(logged_losses: Any, method: str) -> None:
    plain = logged_losses(method=method, max_steps=1)
    tripled = logged_losses(method=method, class_weights={"neg": 3, "pos": 3}, max_steps=1)
    assert tripled[0] == pytest.approx(3 * plain[0], rel=1e-5)


def test_focal_loss_trains_through_the_trainer(logged_losses: Any) -> None:
    """Focal loss with gamma 0 is cross-entropy; with gamma 2 it down-weights every row (by (1 - p)^2 < 1)."""
    plain = logged_losses(max_steps=1)
    assert logged_losses(loss="focal", focal_gamma=0.0, max_steps=1) == pytest.approx(plain, rel=1e-5)
    assert logged_losses(loss="focal", focal_gamma=2.0, max_steps=1)[0] < 0.5 * plain[0]
