"""The task seam (distiltune.tasks.base) and its single-label implementation: the registry, logits -> probabilities
-> decisions with and without a calibration, the answers of predictors and the server's label order, the metric
checks and the Trainer's compute_metrics. Fixed arrays, checked by hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from distiltune.errors import ConfigError
from distiltune.tasks.base import SINGLE_LABEL, Task, get_task, task_for, task_of_model
from distiltune.tasks.calibration import Calibration
from distiltune.tasks.single_label import SINGLE_LABEL_TASK, SingleLabelTask

NAMES = ["negative", "positive"]
#: softmax rows: [0.269, 0.731], [0.881, 0.119], [0.354, 0.646]; after T = 2: p(positive) = 0.622, 0.269, 0.574.
LOGITS = np.array([[0.0, 1.0], [2.0, 0.0], [0.0, 0.6]], dtype=np.float32)
THRESHOLDED = Calibration(temperature=2.0, threshold=0.6, threshold_label_id=1)


def test_registry_gives_the_single_label_task_for_every_run_so_far() -> None:
    task = get_task(SINGLE_LABEL)
    assert isinstance(task, SingleLabelTask) and task is SINGLE_LABEL_TASK
    assert task_for() is task and task_for(SimpleNamespace(data=SimpleNamespace())) is task
    # model/labels.json of every run so far has no task entry.
    assert task_of_model({"id2label": {"0": "negative", "1": "positive"}, "method": "full"}) is task
    assert task_of_model({"task": "single_label"}) is task
    with pytest.raises(ValueError, match="unknown task 'regression'.*multi_label, single_label"):
        get_task("regression")
    assert task.problem_type == "single_label_classification" and task.default_metric == "f1_macro"


def test_every_part_of_the_seam_is_abstract() -> None:
    # A new kind of task must say how it does each step: leaving one out fails at construction, not mid-run.
    with pytest.raises(TypeError, match="abstract"):

        class Partial(Task):
            name = "partial"

            def probabilities(self, logits, calibration=None):  # noqa: ANN001, ANN201
                return logits

        Partial()


def test_probabilities_without_calibration_are_the_softmax_in_the_logits_dtype() -> None:
    probabilities = SINGLE_LABEL_TASK.probabilities(LOGITS)
    assert probabilities.dtype == np.float32  # bit for bit what runs reported before calibration existed
    expected = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-6)
    np.testing.assert_array_equal(SINGLE_LABEL_TASK.probabilities(LOGITS, Calibration()), probabilities)


def test_probabilities_with_a_temperature_are_float64_softmax_of_scaled_logits() -> None:
    probabilities = SINGLE_LABEL_TASK.probabilities(LOGITS, Calibration(temperature=2.0))
    assert probabilities.dtype == np.float64
    scaled = LOGITS.astype(np.float64) / 2.0
    np.testing.assert_allclose(probabilities, np.exp(scaled) / np.exp(scaled).sum(axis=1, keepdims=True), rtol=1e-12)
    assert probabilities[0, 1] == pytest.approx(0.6224593, abs=1e-7)


def test_decisions_are_the_argmax_or_the_tuned_threshold() -> None:
    plain = SINGLE_LABEL_TASK.probabilities(LOGITS)
    assert SINGLE_LABEL_TASK.decide(plain).tolist() == [1, 0, 1]
    assert SINGLE_LABEL_TASK.decide(plain, Calibration(temperature=2.0)).tolist() == [1, 0, 1]
    # p(positive) after T = 2 is 0.622, 0.269, 0.574: the threshold 0.6 keeps only the first positive, where the
    # argmax would also pick the third.
    probabilities, decisions = SINGLE_LABEL_TASK.predict(LOGITS, THRESHOLDED)
    assert decisions.tolist() == [1, 0, 0]
    assert SINGLE_LABEL_TASK.decide(probabilities).tolist() == [1, 0, 1]
    # A threshold on the first label: negative where p(negative) >= 0.5.
    on_negative = Calibration(threshold=0.5, threshold_label_id=0)
    assert SINGLE_LABEL_TASK.predict(LOGITS, on_negative)[1].tolist() == [1, 0, 1]
    assert SINGLE_LABEL_TASK.agreement(np.array([1, 0, 0]), np.array([1, 0, 1])).tolist() == [True, True, False]


def test_predictor_answers_put_the_decided_label_first() -> None:
    plain = SINGLE_LABEL_TASK.prediction_results(SINGLE_LABEL_TASK.probabilities(LOGITS), NAMES, None, top_k=1)
    assert [row["label"] for row in plain] == ["positive", "negative", "positive"]
    assert plain[0]["score"] == pytest.approx(0.731059, abs=1e-6) and len(plain[0]["scores"]) == 1
    assert "threshold" not in plain[0]

    probabilities = SINGLE_LABEL_TASK.probabilities(LOGITS, THRESHOLDED)
    answers = SINGLE_LABEL_TASK.prediction_results(probabilities, NAMES, THRESHOLDED, top_k=1)
    third = answers[2]
    # The thresholded label is not the most probable one here: every score is listed, highest first.
    assert third["label"] == "negative" and third["score"] == pytest.approx(0.425557, abs=1e-6)
    assert [score["label"] for score in third["scores"]] == ["positive", "negative"]
    assert third["threshold"] == {"label": "positive", "value": 0.6}


def test_server_label_order_follows_the_decision_for_probabilities_and_logits() -> None:
    probabilities = SINGLE_LABEL_TASK.probabilities(LOGITS, THRESHOLDED)
    assert SINGLE_LABEL_TASK.ranked_labels(probabilities[2]) == [1, 0]
    assert SINGLE_LABEL_TASK.ranked_labels(probabilities[2], THRESHOLDED) == [0, 1]
    # raw scores are logits: the decision is taken on their calibrated probabilities, the order stays the logits'.
    assert SINGLE_LABEL_TASK.ranked_labels(LOGITS[2].astype(np.float64), THRESHOLDED, raw=True) == [0, 1]
    assert SINGLE_LABEL_TASK.ranked_labels(LOGITS[0].astype(np.float64), THRESHOLDED, raw=True) == [1, 0]
    assert SINGLE_LABEL_TASK.info(THRESHOLDED) == {"temperature": 2.0, "decision_threshold": 0.6}
    assert SINGLE_LABEL_TASK.info() == {"temperature": 1.0, "decision_threshold": None}


def test_metric_checks_refuse_what_the_labels_cannot_give() -> None:
    SINGLE_LABEL_TASK.check_metric("f1", 2)
    SINGLE_LABEL_TASK.check_metric("loss", 3)
    with pytest.raises(ConfigError, match="train.metric 'f1' is not available"):
        SINGLE_LABEL_TASK.check_metric("f1", 3)
    with pytest.raises(ConfigError, match="train.metric 'hamming'"):
        SINGLE_LABEL_TASK.check_metric("hamming", 2)
    with pytest.raises(ConfigError, match="two labels; this one has 3"):
        SINGLE_LABEL_TASK.check_calibration_settings(3, tune_threshold=True)
    SINGLE_LABEL_TASK.check_calibration_settings(3, tune_threshold=False)
    with pytest.raises(ConfigError, match="train.loss"):
        SINGLE_LABEL_TASK.check_loss("hinge", 2.0)


def test_trainer_metrics_are_flat_and_score_the_argmax() -> None:
    compute = SINGLE_LABEL_TASK.compute_metrics(NAMES)
    metrics = compute(SimpleNamespace(predictions=(LOGITS, None), label_ids=np.array([1, 0, 0])))
    assert metrics["accuracy"] == pytest.approx(2 / 3) and metrics["recall"] == 1.0
    assert "samples" not in metrics and all(isinstance(value, float) for value in metrics.values())


def test_score_reports_loss_calibration_and_what_each_fit_changed() -> None:
    gold = np.array([1, 0, 0])
    metrics, rows = SINGLE_LABEL_TASK.score(
        LOGITS, gold, NAMES, 0.5, ["a", "b", "c"], None, THRESHOLDED, fitted=("temperature", "threshold")
    )
    probabilities = SINGLE_LABEL_TASK.probabilities(LOGITS, THRESHOLDED)
    assert metrics["accuracy"] == 1.0 and [row["predicted"] for row in rows] == ["positive", "negative", "negative"]
    expected_loss = -np.mean(np.log(probabilities[np.arange(3), gold]))
    assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-12)
    assert metrics["calibration"]["nll"] == pytest.approx(expected_loss, rel=1e-12)
    # At T = 1 with the argmax the third row is wrong; the threshold alone (argmax of the T = 2 scores) too.
    assert metrics["before_calibration"]["accuracy"] == pytest.approx(2 / 3)
    assert metrics["before_threshold"]["accuracy"] == pytest.approx(2 / 3)
    unfitted, _ = SINGLE_LABEL_TASK.score(LOGITS, gold, NAMES, 0.5, ["a", "b", "c"], None)
    assert "before_calibration" not in unfitted and unfitted["accuracy"] == pytest.approx(2 / 3)


def test_fit_calibration_tunes_the_threshold_of_the_minority_label() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(200, 2))
    labels = (logits[:, 1] - logits[:, 0] + rng.normal(scale=1.5, size=200) > 1.0).astype(int)
    train_labels = np.array([0] * 30 + [1] * 10)  # label 1 is the minority in training
    calibration, fits = SINGLE_LABEL_TASK.fit_calibration(
        logits, labels, train_labels, NAMES, temperature=False, threshold_metric="f1"
    )
    assert calibration.temperature == 1.0 and calibration.threshold_label_id == 1
    assert set(fits) == {"threshold"} and fits["threshold"]["label"] == "positive"
    assert fits["threshold"]["validation_score"] >= fits["threshold"]["validation_score_argmax"]
    identity, none = SINGLE_LABEL_TASK.fit_calibration(
        logits, labels, train_labels, NAMES, temperature=False, threshold_metric=None
    )
    assert identity.is_identity and none == {}
