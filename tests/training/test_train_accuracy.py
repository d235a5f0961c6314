"""The training accuracy in ``history.jsonl``: counted from the training batches' own logits, per evaluation
interval, through gradient accumulation and with a ``compute_loss_func``."""

from __future__ import annotations

from typing import Any

import pytest

import distiltune
from distiltune import runs


def test_train_accuracy_is_the_accuracy_of_the_training_batches_own_logits(fast_overrides: dict) -> None:
    import pandas as pd
    import torch
    from transformers import TrainerCallback

    from distiltune.modeling import load_tokenizer

    # With gradient accumulation the Trainer trains through distiltune's loss adapter (training.losses), so it pops
    # the labels before the forward pass: each row's label is looked up by its token ids instead.
    tokenizer = load_tokenizer(fast_overrides["model.name"])
    frame = pd.read_csv(fast_overrides["data.dataset"])
    encoded = tokenizer(frame["review"].tolist(), truncation=True, max_length=16)["input_ids"]
    label_of = {tuple(ids): int(label == "pos") for ids, label in zip(encoded, frame["sentiment"], strict=True)}
    # (optimizer step when the forward ran, logits, labels) of every forward pass in training mode
    forwards: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def labels_of(inputs: dict) -> torch.Tensor:
        rows = zip(inputs["input_ids"].tolist(), inputs["attention_mask"].tolist(), strict=True)
        return torch.tensor([label_of[tuple(i for i, m in zip(ids, mask, strict=True) if m)] for ids, mask in rows])

    class RecordTrainingForwards(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN003, ANN201
            def record(module: Any, _args: Any, inputs: dict, output: Any) -> None:
                if module.training:
                    forwards.append((state.global_step, output.logits.detach().clone(), labels_of(inputs)))

            model.register_forward_hook(record, with_kwargs=True)

    # 18 training rows, micro-batches of 3 accumulated in pairs: 6 rows per step; evaluations after steps 2 and 4.
    run = distiltune.train(
        None,
        {
            **fast_overrides,
            "train.batch_size": 3,
            "train.gradient_accumulation_steps": 2,
            "train.max_steps": 4,
            "train.eval_strategy": "steps",
            "train.eval_steps": 2,
        },
        callbacks=[RecordTrainingForwards()],
    )
    history = runs.read_jsonl(run.dir / runs.HISTORY_FILE)
    assert [row["step"] for row in history] == [2, 4]
    assert len(forwards) == 8  # 4 steps x 2 micro-batches, and no evaluation batch among them

    by_hand = []
    for interval in range(2):
        batches = [(logits, labels) for step, logits, labels in forwards if step // 2 == interval]
        correct = sum(int((logits.argmax(dim=-1) == labels).sum()) for logits, labels in batches)
        by_hand.append(correct / sum(len(labels) for _, labels in batches))
    assert [row["train_accuracy"] for row in history] == by_hand


def test_train_accuracy_is_counted_when_a_compute_loss_func_takes_the_labels(tiny_model: str, tmp_path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, TrainingArguments

    from distiltune.training.trainer import ResumableTrainer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=2)
    received: list[Any] = []

    def weighted_loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        received.append(labels)
        return torch.nn.functional.cross_entropy(outputs.logits, labels, weight=torch.tensor([1.0, 3.0]))

    trainer = ResumableTrainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none"),
        compute_loss_func=weighted_loss,
    )
    inputs = {"input_ids": torch.tensor([[2, 10, 11, 3], [2, 12, 13, 3], [2, 14, 3, 0]]), "labels": None}
    inputs["attention_mask"] = (inputs["input_ids"] != 0).long()
    inputs["labels"] = torch.tensor([0, 1, 1])
    model.train()
    loss, outputs = trainer.compute_loss(model, dict(inputs), return_outputs=True)
    assert received and torch.equal(received[0], inputs["labels"])  # the Trainer's own path ran the custom loss
    expected = int((outputs.logits.argmax(dim=-1) == inputs["labels"]).sum())
    assert trainer.train_accuracy_counts() == (expected, 3)
    model.eval()
    trainer.compute_loss(model, dict(inputs))  # evaluation batches are not training batches
    assert trainer.train_accuracy_counts() == (expected, 3)
    assert loss.shape == () and loss.requires_grad


@pytest.mark.parametrize("seen", [0, 4])
def test_history_rows_carry_the_handed_over_accuracy_once(tmp_path, seen: int) -> None:
    from types import SimpleNamespace

    from distiltune.training.callbacks import HistoryCallback

    history = HistoryCallback(tmp_path / "history.jsonl")
    history.record_train_accuracy(3, seen)
    state = SimpleNamespace(epoch=1.0, global_step=2)
    history.on_evaluate(None, state, None, metrics={"eval_accuracy": 0.5})
    history.on_evaluate(None, state, None, metrics={"eval_accuracy": 0.5})
    rows = runs.read_jsonl(tmp_path / "history.jsonl")
    assert [row["train_accuracy"] for row in rows] == [0.75 if seen else None, None]


def test_the_runs_accuracy_chart_draws_the_training_accuracy(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from distiltune import plots

    labels: list[str] = []
    real_save = plots.save_figure

    def recording_save(fig: Any, axes: Any, path: Any) -> None:
        labels.extend(label for ax in axes for label in ax.get_legend_handles_labels()[1])
        real_save(fig, axes, path)

    monkeypatch.setattr(plots, "save_figure", recording_save)
    history = [
        {"step": 2, "train_accuracy": 0.6, "accuracy": 0.5, "f1_macro": 0.4},
        {"step": 4, "train_accuracy": 0.9, "accuracy": 0.7, "f1_macro": 0.6},
    ]
    plots.plot_metric_curves({"": history}, tmp_path / "accuracy_f1.png")
    assert labels == ["training accuracy", "validation accuracy", "validation macro F1"]
