"""Metrics against scikit-learn and by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from distiltune.tasks.metrics import softmax
from distiltune.tasks.single_label import classification_metrics, score_predictions


def test_binary_metrics_by_hand() -> None:
    gold = np.array([0, 0, 1, 1, 1])
    predicted = np.array([0, 1, 1, 1, 0])
    metrics = classification_metrics(gold, predicted, ["neg", "pos"])
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["precision"] == pytest.approx(2 / 3) and metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["neg"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert metrics["confusion_matrix"]["matrix"] == [[1, 1], [1, 2]]
    assert metrics["f1_macro"] == pytest.approx((0.5 + 2 / 3) / 2)


def test_multiclass_matches_sklearn_and_has_no_binary_keys() -> None:
    rng = np.random.default_rng(0)
    gold, predicted = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    metrics = classification_metrics(gold, predicted, ["a", "b", "c", "d"])
    assert metrics["f1_macro"] == pytest.approx(f1_score(gold, predicted, average="macro"))
    assert metrics["f1_weighted"] == pytest.approx(f1_score(gold, predicted, average="weighted"))
    assert "f1" not in metrics and len(metrics["confusion_matrix"]["matrix"]) == 4


def test_absent_class_counts_as_zero_not_an_error() -> None:
    metrics = classification_metrics(np.array([0, 0]), np.array([0, 0]), ["a", "b", "c"])
    assert metrics["per_class"]["b"]["support"] == 0 and metrics["accuracy"] == 1.0


def test_softmax_is_stable() -> None:
    probabilities = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    assert np.allclose(probabilities, [[1.0, 0.0], [0.5, 0.5]])


def test_score_predictions_name_labels_and_keep_input_order() -> None:
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    gold = np.array([0, 0, 1])
    metrics, rows = score_predictions(["a", "b", "c"], None, gold, probabilities, ["neg", "pos"], seconds=0.5)

    assert metrics["accuracy"] == pytest.approx(1 / 3) and metrics["eval_samples_per_second"] == 6.0

    assert [row["text"] for row in rows] == ["a", "b", "c"]
    assert [row["index"] for row in rows] == [0, 1, 2]
    assert [(row["gold"], row["predicted"], row["correct"]) for row in rows] == [
        ("neg", "neg", True),
        ("neg", "pos", False),
        ("pos", "neg", False),
    ]
    assert rows[1]["probabilities"] == {"neg": 0.2, "pos": 0.8}
    assert all("text_pair" not in row for row in rows)


def test_score_predictions_carry_the_second_sentence_of_pairs() -> None:
    _, rows = score_predictions(
        ["premise"], ["hypothesis"], np.array([2]), np.array([[0.1, 0.2, 0.7]]), ["e", "n", "c"], seconds=0.1
    )

    assert rows[0]["text_pair"] == "hypothesis"
    assert rows[0]["predicted"] == "c" and rows[0]["correct"]
