"""The multi-label task: independent sigmoid scores and per-label decisions, its metrics against scikit-learn, its
loss against torch's, per-label thresholds and the calibration file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, hamming_loss, label_ranking_average_precision_score

from distiltune.errors import RunError
from distiltune.tasks.base import MULTI_LABEL, SINGLE_LABEL, get_task, task_for
from distiltune.tasks.multi_label import (
    DEFAULT_THRESHOLD,
    MIN_TUNING_POSITIVES,
    MultiLabelCalibration,
    as_multi_hot,
    multi_label_loss,
    multi_label_metrics,
)

TASK = get_task(MULTI_LABEL)
NAMES = ["anger", "joy", "love"]


def test_a_text_whose_two_scores_pass_gets_both_labels_and_scores_do_not_sum_to_one() -> None:
    logits = np.array([[2.0, 1.0, -3.0], [-2.0, -1.0, -4.0]])
    probabilities = TASK.probabilities(logits)
    assert probabilities[0, 0] > 0.5 and probabilities[0, 1] > 0.5 and probabilities[0, 2] < 0.5
    assert abs(probabilities[0].sum() - 1.0) > 0.1
    first, second = TASK.prediction_results(probabilities, NAMES, top_k=1)
    assert first["labels"] == ["anger", "joy"] and first["label"] == "anger"
    assert [entry["selected"] for entry in first["scores"]] == [True, True]  # both selected ones listed, top_k 1
    assert second["labels"] == [] and second["label"] is None  # a row may have no label
    assert second["scores"][0]["label"] == "joy" and not second["scores"][0]["selected"]


def test_metrics_equal_scikit_learns_on_fixed_arrays() -> None:
    rng = np.random.default_rng(0)
    gold = (rng.random((40, 5)) < 0.3).astype(int)
    scores = np.clip(gold * 0.5 + rng.random((40, 5)) * 0.6, 0, 1)
    predicted = scores >= 0.5
    names = [f"l{i}" for i in range(5)]
    metrics = multi_label_metrics(gold, predicted, scores, names)
    for average in ("micro", "macro", "weighted", "samples"):
        assert metrics[f"f1_{average}"] == pytest.approx(f1_score(gold, predicted, average=average, zero_division=0))
    assert metrics["hamming_loss"] == pytest.approx(hamming_loss(gold, predicted))
    assert metrics["lrap"] == pytest.approx(label_ranking_average_precision_score(gold, scores))
    assert metrics["subset_accuracy"] == pytest.approx(float((gold == predicted).all(axis=1).mean()))
    assert metrics["per_label"]["l2"]["f1"] == pytest.approx(f1_score(gold[:, 2], predicted[:, 2], zero_division=0))


def test_the_loss_is_torchs_binary_cross_entropy_with_pos_weight_and_focal_at_gamma_0_equals_it() -> None:
    logits = torch.tensor([[1.5, -0.5, 0.2], [-2.0, 0.7, 3.0]])
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    weights = [2.0, 1.0, 0.5]
    expected = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weights))(logits, labels)
    assert torch.allclose(multi_label_loss(logits, labels, weights), expected)
    assert torch.allclose(multi_label_loss(logits, labels, weights, kind="focal", gamma=0.0), expected)
    focal = multi_label_loss(logits, labels, kind="focal", gamma=2.0)
    assert focal < multi_label_loss(logits, labels)  # easy cells count less
    # "sum" over the cells divided by their count is the mean: what the Trainer's num_items_in_batch divides by
    assert torch.allclose(
        multi_label_loss(logits, labels, reduction="sum") / labels.numel(), multi_label_loss(logits, labels)
    )


def test_balanced_weights_are_each_labels_negatives_over_positives() -> None:
    labels = [[0], [0, 1], [], [0, 2], [2]]
    assert TASK.label_counts(labels, 3) == [3, 1, 2]
    assert TASK.balanced_weights(labels, 3) == [2 / 3, 4.0, 1.5]


def test_per_label_thresholds_are_tuned_where_validation_has_enough_positives() -> None:
    rng = np.random.default_rng(1)
    rows = 200
    gold = np.zeros((rows, 3), dtype=int)
    gold[:, 0] = rng.random(rows) < 0.4
    gold[:, 1] = rng.random(rows) < 0.3
    gold[:3, 2] = 1  # fewer than MIN_TUNING_POSITIVES: keeps 0.5
    # label 0's positives score around 0.35 (below 0.5); a tuned threshold near 0.3 recovers them
    logits = np.where(gold == 1, -0.6, -2.5) + rng.normal(0, 0.2, (rows, 3))
    ids = [list(np.flatnonzero(row)) for row in gold]
    calibration, fits = TASK.fit_calibration(logits, ids, ids, NAMES, temperature=False, threshold_metric="f1")
    thresholds = calibration.threshold_vector(3)
    assert (
        3 < MIN_TUNING_POSITIVES
        and thresholds[2] == DEFAULT_THRESHOLD
        and fits["threshold"]["kept_default"] == ["love"]
    )
    assert thresholds[0] < 0.4 and thresholds[1] < 0.4
    assert fits["threshold"]["validation_f1_macro"] > fits["threshold"]["validation_f1_macro_at_default"]
    tuned = TASK.decide(TASK.probabilities(logits, calibration), calibration)
    assert tuned[:, 0].sum() > TASK.decide(TASK.probabilities(logits))[:, 0].sum()


def test_a_temperature_keeps_the_decisions_at_0_5() -> None:
    logits = np.array([[0.3, -0.2, 4.0], [-0.01, 0.01, -3.0]])
    scaled = MultiLabelCalibration(temperature=2.5)
    assert (TASK.decide(TASK.probabilities(logits, scaled), scaled) == TASK.decide(TASK.probabilities(logits))).all()
    assert not np.allclose(TASK.probabilities(logits, scaled), TASK.probabilities(logits))


def test_the_calibration_file_round_trips_and_a_wrong_one_is_a_one_line_error() -> None:
    saved = MultiLabelCalibration(temperature=1.3, thresholds=(0.2, 0.5, 0.7)).to_dict()
    assert TASK.read_calibration(saved, NAMES, "calibration.json") == MultiLabelCalibration(1.3, (0.2, 0.5, 0.7))
    with pytest.raises(RunError, match=r"calibration.json: invalid calibration .*2 thresholds for 3 labels"):
        TASK.read_calibration({"thresholds": [0.2, 0.5]}, NAMES, "calibration.json")


def test_agreement_and_gold_read_label_id_lists() -> None:
    gold = as_multi_hot([[0, 1], [], [2]], 3)
    assert gold.tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 1]]
    decisions = np.array([[True, True, False], [False, True, False], [False, False, True]])
    assert TASK.agreement(decisions, np.array([[0, 1], [], [2]], dtype=object)).tolist() == [True, False, True]


def test_the_run_config_chooses_the_task() -> None:
    from distiltune.config import load_config

    assert task_for(load_config()).name == SINGLE_LABEL
    assert task_for(load_config(None, {"data.multi_label": True})).name == MULTI_LABEL
