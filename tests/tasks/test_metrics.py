"""Metrics against scikit-learn and by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from distiltune.tasks.metrics import negative_log_likelihood, softmax
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


# --- the one softmax and the one negative log-likelihood -------------------------------------------------------


def _previous_softmax(logits: np.ndarray) -> np.ndarray:
    """The hand-written softmax that scipy's replaced (tasks/metrics.py before issue 29)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_is_the_previous_one_bit_for_bit_in_the_logits_dtype(dtype: type) -> None:
    logits = (np.random.default_rng(4).normal(size=(50, 5)) * 6).astype(dtype)
    logits[0, 2] = -np.inf  # a label a TF-IDF model never saw
    probabilities = softmax(logits)
    assert probabilities.dtype == dtype
    np.testing.assert_array_equal(probabilities, _previous_softmax(logits))
    assert probabilities[0, 2] == 0.0


def test_nll_floors_a_confident_miss_at_float64_epsilon() -> None:
    from sklearn.metrics import log_loss

    # Row 0 gives its gold label 0 (a TF-IDF model's unseen label), row 1 gives it 1e-20: both count -log(eps).
    probabilities = np.array([[1.0, 0.0], [1.0 - 1e-20, 1e-20], [0.25, 0.75]])
    gold = np.array([1, 1, 1])
    floor = -np.log(np.finfo(np.float64).eps)  # 36.04 nats
    assert negative_log_likelihood(probabilities, gold) == pytest.approx((2 * floor - np.log(0.75)) / 3, rel=1e-12)
    assert negative_log_likelihood(probabilities, gold) == pytest.approx(log_loss(gold, probabilities, labels=[0, 1]))
    assert np.isnan(negative_log_likelihood(np.zeros((0, 2)), np.array([], dtype=int)))


def test_nll_of_logits_is_exact_at_any_gap() -> None:
    # A miss by 1000 nats costs 1000 nats from logits (the temperature fit's objective keeps its slope), where a
    # probability would have rounded to 0 and met the floor.
    logits = np.array([[1000.0, 0.0], [0.0, 0.0]])
    gold = np.array([1, 0])
    assert negative_log_likelihood(logits, gold, from_logits=True) == pytest.approx((1000 + np.log(2)) / 2)
    assert negative_log_likelihood(softmax(logits), gold) == pytest.approx((36.04365338911715 + np.log(2)) / 2)


def test_nll_keeps_float32_probabilities_in_float32() -> None:
    # What runs without calibration have always reported as `loss`: the float32 mean of float32 log-probabilities.
    probabilities = softmax(np.random.default_rng(5).normal(size=(64, 3)).astype(np.float32))
    gold = np.random.default_rng(6).integers(0, 3, 64)
    picked = probabilities[np.arange(64), gold]
    assert negative_log_likelihood(probabilities, gold) == float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))
