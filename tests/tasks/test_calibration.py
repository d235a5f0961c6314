"""Calibration metrics, temperature scaling and decision thresholds (distiltune.tasks.calibration), and the reliability
diagram: pure functions on fixed arrays, checked against scikit-learn, torchmetrics and hand computations."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, f1_score, log_loss

from distiltune.errors import ConfigError, DataError, RunError
from distiltune.tasks.calibration import (
    ECE_BINS,
    TEMPERATURE_BOUNDS,
    THRESHOLD_METRICS,
    Calibration,
    apply_temperature,
    apply_threshold,
    brier_score,
    calibration_metrics,
    expected_calibration_error,
    fit_temperature,
    fit_temperature_details,
    likelihood_ratio_critical_value,
    negative_log_likelihood,
    reliability_bins,
    tune_threshold,
)
from distiltune.tasks.metrics import softmax as softmax64


def sampled_task(rows: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): a model that is calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, classes)) * 2.0
    probabilities = softmax64(logits)
    cumulative = probabilities.cumsum(axis=1)
    labels = (rng.random((rows, 1)) > cumulative).sum(axis=1)
    return logits, labels


# --- metrics -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("classes", [2, 4])
def test_ece_matches_torchmetrics(classes: int) -> None:
    import torch
    from torchmetrics.functional import classification as functional  # a dev dependency: missing fails, not skips

    logits, labels = sampled_task(600, classes, seed=classes)
    probabilities = softmax64(logits * 1.7)  # overconfident, so the ECE is far from 0
    assert probabilities.max() < 1.0  # torchmetrics 1.9 bins a confidence of exactly 1.0 apart (#3510)
    ours = expected_calibration_error(probabilities, labels, bins=15)
    # Top-label ECE for every number of classes: binary included (binary_calibration_error would bin p(class 1)).
    reference = functional.multiclass_calibration_error(
        torch.tensor(probabilities), torch.tensor(labels), num_classes=classes, n_bins=15, norm="l1"
    )
    assert ours > 0.05
    assert ours == pytest.approx(float(reference), abs=1e-6)  # torchmetrics bins float32 confidences


def test_ece_by_hand_with_a_confidence_of_one() -> None:
    # Rows (confidence, correct): (0.95, yes), (1.0, no), (0.62, yes), (0.62, no).
    probabilities = np.array([[0.05, 0.95], [1.0, 0.0], [0.38, 0.62], [0.62, 0.38]])
    labels = np.array([1, 1, 1, 1])
    table = reliability_bins(probabilities, labels)
    assert len(table["count"]) == ECE_BINS and sum(table["count"]) == 4
    # 1.0 shares the last bin [14/15, 1] with 0.95; 0.62 falls in [9/15, 10/15).
    assert table["count"][14] == 2 and table["count"][9] == 2
    assert table["confidence"][14] == pytest.approx(0.975) and table["accuracy"][14] == pytest.approx(0.5)
    # (|0.5 - 0.975| * 2 + |0.5 - 0.62| * 2) / 4
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.2975)


@pytest.mark.parametrize("classes", [2, 3])
def test_brier_and_nll_match_scikit_learn(classes: int) -> None:
    logits, labels = sampled_task(300, classes, seed=10 + classes)
    probabilities = softmax64(logits)
    ids = list(range(classes))
    # scikit-learn's default scaling: halved for two classes (the usual binary Brier), Brier's sum for more.
    assert brier_score(probabilities, labels) == pytest.approx(brier_score_loss(labels, probabilities, labels=ids))
    assert negative_log_likelihood(probabilities, labels) == pytest.approx(log_loss(labels, probabilities, labels=ids))
    metrics = calibration_metrics(probabilities, labels)
    assert set(metrics) == {"ece", "brier", "nll"}
    assert metrics["brier"] == brier_score(probabilities, labels)


def test_nll_of_a_zero_probability_is_finite() -> None:
    assert math.isfinite(negative_log_likelihood(np.array([[1.0, 0.0]]), np.array([1])))


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="labels"):
        calibration_metrics(np.array([[0.5, 0.5]]), np.array([2]))
    with pytest.raises(ValueError, match="NaN"):
        calibration_metrics(np.array([[np.nan, 0.5]]), np.array([0]))


# --- temperature scaling -----------------------------------------------------------------------------------


def test_temperature_fixes_an_overconfident_model_and_keeps_the_argmax() -> None:
    logits, labels = sampled_task(3000, 3, seed=0)
    overconfident = logits * 3.0
    fit = fit_temperature_details(overconfident, labels)
    assert fit.accepted and not fit.at_bound
    assert fit.temperature == pytest.approx(3.0, rel=0.1)
    assert fit.nll_after < fit.nll_before
    scaled = apply_temperature(overconfident, fit.temperature)
    assert (scaled.argmax(axis=1) == overconfident.argmax(axis=1)).all()
    before = calibration_metrics(softmax64(overconfident), labels)
    after = calibration_metrics(softmax64(scaled), labels)
    assert after["nll"] < before["nll"] and after["ece"] < before["ece"] / 3 and after["brier"] < before["brier"]
    # Searched to convergence: the optimum of a dense grid over log T agrees.
    grid = np.exp(np.linspace(math.log(2), math.log(5), 601))
    grid_nll = [negative_log_likelihood(softmax64(overconfident / t), labels) for t in grid]
    assert fit.temperature == pytest.approx(grid[int(np.argmin(grid_nll))], rel=2e-3)


#: Fits of the hand-written golden-section search (tolerance 1e-7 in log T) and exact log-sum-exp NLL that
#: scipy's bounded minimiser replaced, computed with that code (commit c6bcf06) before it was deleted:
#: (rows, classes, seed, logit scale) -> (temperature, optimum, nll_before, nll_after, accepted).
OLD_TEMPERATURE_FITS = {
    (3000, 3, 0, 3.0): (3.0338414625168673, 3.0338414625168673, 0.9560278619883026, 0.6019742872628677, True),
    (3000, 3, 1, 0.4): (0.40449824202516826, 0.40449824202516826, 0.7215846423358608, 0.599963208370663, True),
    (3000, 3, 2, 1.0): (1.0, 1.009875066383508, 0.6123551997542392, 0.6123551997542392, False),
    (40, 2, 5, 2.0): (2.9714527498394854, 2.9714527498394854, 0.7164253732187291, 0.4953763094328079, True),
    (500, 5, 9, 1.7): (1.6365514059022592, 1.6365514059022592, 0.9559624846472835, 0.8648043643356448, True),
}


@pytest.mark.parametrize("case", sorted(OLD_TEMPERATURE_FITS))
def test_temperature_fit_matches_the_previous_search(case: tuple[int, int, int, float]) -> None:
    # Both searches stop within about 1e-7 of the optimum in log T (the old one at an interval of 1e-7, scipy's when
    # its step falls under 2 * (1.5e-8 |log T| + xatol / 3)), so their temperatures may differ by ~2e-7 relative:
    # 3e-7 allows that and nothing more (measured: 2.1e-8 at most). The NLL at a given T is the same sum computed in
    # another order (log-softmax instead of log-sum-exp), equal to ~1e-15.
    rows, classes, seed, scale = case
    temperature, optimum, nll_before, nll_after, accepted = OLD_TEMPERATURE_FITS[case]
    logits, labels = sampled_task(rows, classes, seed)
    fit = fit_temperature_details(logits * scale, labels)
    assert fit.accepted is accepted and not fit.at_bound
    assert fit.temperature == (pytest.approx(temperature, rel=3e-7) if accepted else 1.0)
    assert fit.optimum == pytest.approx(optimum, rel=3e-7)
    assert fit.nll_before == pytest.approx(nll_before, rel=1e-12)
    assert fit.nll_after == pytest.approx(nll_after, rel=1e-9)


def test_temperature_on_a_bound_matches_the_previous_search() -> None:
    logits = np.array([[3.0, 0.0], [0.0, 2.0], [1.5, 0.0], [0.0, 4.0]])
    every_right = fit_temperature_details(logits, np.array([0, 1, 0, 1]))
    assert (every_right.optimum, every_right.temperature, every_right.at_bound) == (0.05, 1.0, True)
    every_wrong = fit_temperature_details(logits, np.array([1, 0, 1, 0]))
    assert (every_wrong.optimum, every_wrong.temperature, every_wrong.at_bound) == (20.0, 20.0, True)
    assert every_wrong.nll_after == pytest.approx(0.7612106795178725, rel=1e-12)


@pytest.mark.parametrize(
    ("significance", "previous"),
    [(0.05, 3.8414588206941236), (0.01, 6.634896601021211), (0.1, 2.7055434540954106), (0.5, 0.4549364231195727)],
)
def test_likelihood_ratio_critical_value_matches_the_previous_formula(significance: float, previous: float) -> None:
    # The previous code squared a normal quantile, NormalDist().inv_cdf(1 - significance / 2) ** 2: the same chi^2_1
    # quantile in closed form, equal to float rounding (measured: 7e-15 at most).
    assert likelihood_ratio_critical_value(significance) == pytest.approx(previous, rel=1e-13)


def test_temperature_below_one_for_an_underconfident_model() -> None:
    logits, labels = sampled_task(3000, 3, seed=1)
    assert fit_temperature(logits * 0.4, labels) == pytest.approx(0.4, rel=0.1)


def test_temperature_stays_one_on_a_calibrated_model() -> None:
    logits, labels = sampled_task(3000, 3, seed=2)
    fit = fit_temperature_details(logits, labels)
    assert fit.temperature == 1.0 and not fit.accepted
    assert fit.optimum != 1.0 and fit.optimum == pytest.approx(1.0, abs=0.1)  # the noise it did not chase
    assert fit.nll_after == fit.nll_before


def test_temperature_stays_inside_its_bounds(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    margin = rng.uniform(1, 3, 200)
    right = np.stack([np.where(labels == 0, margin, -margin), np.where(labels == 1, margin, -margin)], axis=1)
    low, high = TEMPERATURE_BOUNDS
    with caplog.at_level(logging.WARNING, logger="distiltune"):
        sharpest = fit_temperature_details(right, labels)  # every row right: NLL falls as T -> 0
    assert sharpest.temperature == low and sharpest.at_bound
    assert "bound" in caplog.text
    flattest = fit_temperature_details(-right, labels)  # every row wrong: NLL falls as T -> infinity
    assert flattest.temperature == high and flattest.at_bound
    assert fit_temperature(right, labels, bounds=(0.5, 2.0)) == 0.5
    with pytest.raises(ValueError, match="bounds"):
        fit_temperature(right, labels, bounds=(-1.0, 2.0))


def test_temperature_never_changes_the_argmax() -> None:
    import torch

    logits = np.random.default_rng(4).normal(size=(2000, 5)) * 5
    for temperature in (TEMPERATURE_BOUNDS[0], 0.3, 1.0, 1.7, TEMPERATURE_BOUNDS[1]):
        scaled = apply_temperature(logits, temperature)
        assert (scaled.argmax(axis=1) == logits.argmax(axis=1)).all()
        as_tensor = apply_temperature(torch.tensor(logits, dtype=torch.float32), temperature)
        assert isinstance(as_tensor, torch.Tensor)
        assert (as_tensor.argmax(dim=1).numpy() == logits.argmax(axis=1)).all()
    with pytest.raises(ValueError, match="positive"):
        apply_temperature(logits, -1.0)


def test_temperature_accepts_torch_tensors() -> None:
    import torch

    logits, labels = sampled_task(1000, 2, seed=5)
    from_numpy = fit_temperature(logits * 2, labels)
    from_torch = fit_temperature(torch.tensor(logits * 2), torch.tensor(labels))
    assert from_torch == pytest.approx(from_numpy) and from_numpy > 1.5


# --- decision thresholds -----------------------------------------------------------------------------------

# Probability of class 1 and the gold label of eight rows (hand-made).
SCORES = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.5, 0.9, 0.32])
GOLD = np.array([0, 0, 1, 1, 1, 0, 1, 0])
BINARY = np.stack([1 - SCORES, SCORES], axis=1)


def test_threshold_maximises_f1_of_the_chosen_class() -> None:
    # Class 1 ranked: .9+ .5- .4+ .35+ .32- .3+ .2- .1-; F1 peaks (8/10) with the top six positive.
    assert tune_threshold(BINARY, GOLD, positive_id=1) == pytest.approx(0.25)
    # Class 0 ranked by 1 - score: .9+ .8+ .7- .68+ .65- .6- .5+ .1-; F1 peaks (6/8) with the top four.
    assert tune_threshold(BINARY, GOLD, positive_id=0) == pytest.approx(0.665)
    predicted = apply_threshold(BINARY, 0.25, positive_id=1)
    assert f1_score(GOLD, predicted) == pytest.approx(0.8)


def test_threshold_ties_go_to_the_cut_nearest_one_half() -> None:
    # Accuracy 6/8 with the top four or the top six positive: 0.335 is nearer 0.5 than 0.25.
    assert tune_threshold(BINARY, GOLD, positive_id=1, metric="accuracy") == pytest.approx(0.335)
    # Ranked .9+ .75- .7+ .3-: accuracy 3/4 with the top one (threshold 0.825) or the top three (0.5) positive.
    scores = np.array([0.9, 0.75, 0.7, 0.3])
    probabilities = np.stack([1 - scores, scores], axis=1)
    assert tune_threshold(probabilities, np.array([1, 0, 1, 0]), 1, metric="accuracy") == pytest.approx(0.5)


def imbalanced_scores() -> tuple[np.ndarray, np.ndarray]:
    """400 rows, 15% positive, overlapping scores (a seed where the four metrics pick four different cuts)."""
    rng = np.random.default_rng(14)
    labels = (rng.random(400) < 0.15).astype(int)
    scores = np.clip(rng.normal(0.3 + 0.25 * labels, 0.15), 0.001, 0.999)
    return np.stack([1 - scores, scores], axis=1), labels


def test_threshold_depends_on_the_metric() -> None:
    probabilities, labels = imbalanced_scores()
    thresholds = {metric: tune_threshold(probabilities, labels, 1, metric) for metric in THRESHOLD_METRICS}
    assert len(set(thresholds.values())) == 4, thresholds


@pytest.mark.parametrize("metric", ["f1", "f1_macro", "balanced_accuracy", "accuracy"])
def test_threshold_is_as_good_as_every_other_cut(metric: str) -> None:
    probabilities, labels = imbalanced_scores()
    scores = probabilities[:, 1]

    def score(predicted: np.ndarray) -> float:
        tp, fp = np.sum((predicted == 1) & (labels == 1)), np.sum((predicted == 1) & (labels == 0))
        fn, tn = np.sum((predicted == 0) & (labels == 1)), np.sum((predicted == 0) & (labels == 0))
        f1_of = {1: 2 * tp / max(1, 2 * tp + fp + fn), 0: 2 * tn / max(1, 2 * tn + fn + fp)}
        return {
            "f1": f1_of[1],
            "f1_macro": (f1_of[0] + f1_of[1]) / 2,
            "balanced_accuracy": (tp / (tp + fn) + tn / (tn + fp)) / 2,
            "accuracy": (tp + tn) / len(labels),
        }[metric]

    tuned_predictions = apply_threshold(probabilities, tune_threshold(probabilities, labels, 1, metric), 1)
    tuned = score(tuned_predictions)
    # Brute force: every score as a ">=" threshold is every cut a threshold can make.
    assert tuned == pytest.approx(max(score((scores >= t).astype(int)) for t in np.unique(scores)))
    assert tuned > score(probabilities.argmax(axis=1))  # the 0.5 rule is not the best cut on this data
    if metric == "f1":
        assert tuned == pytest.approx(f1_score(labels, tuned_predictions))


def test_threshold_needs_a_binary_task_and_both_labels() -> None:
    four = np.full((4, 4), 0.25)
    with pytest.raises(ConfigError, match="two labels; this one has 4"):
        tune_threshold(four, np.array([0, 1, 2, 3]), positive_id=1)
    with pytest.raises(ConfigError, match="threshold_metric"):
        tune_threshold(BINARY, GOLD, positive_id=1, metric="auc")
    with pytest.raises(DataError, match="validation split"):
        tune_threshold(BINARY, np.zeros(8, dtype=int), positive_id=1)


def test_threshold_stays_a_probability_when_scores_reach_one() -> None:
    probabilities = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    # "Never class 1" would score best (2/3) but needs a threshold above 1.0; the best probability cut is taken.
    threshold = tune_threshold(probabilities, np.array([0, 0, 1]), positive_id=1, metric="accuracy")
    assert 0.0 <= threshold <= 1.0
    assert apply_threshold(probabilities, threshold, 1).tolist() == [1, 1, 1]


# --- what predictors apply -----------------------------------------------------------------------------------


def test_calibration_applies_temperature_then_threshold() -> None:
    logits = np.array([[0.0, 1.0], [2.0, 0.0], [0.0, 0.6]])
    identity = Calibration()
    assert identity.is_identity
    probabilities, labels = identity.predict(logits)
    assert (labels == logits.argmax(axis=1)).all()
    calibration = Calibration(temperature=2.0, threshold=0.6, threshold_label_id=1)
    probabilities, labels = calibration.predict(logits)
    np.testing.assert_allclose(probabilities, softmax64(logits / 2.0))
    # p(class 1) = 0.62, 0.27, 0.57 after T = 2: only the first reaches 0.6. Before T, the third has 0.65 (and the
    # argmax would pick class 1 for it too).
    assert labels.tolist() == [1, 0, 0]
    restored = Calibration.from_dict(calibration.to_dict(), ["negative", "positive"])
    assert restored == calibration


def test_calibration_file_errors_name_the_file() -> None:
    with pytest.raises(RunError, match="calibration.json.*two labels"):
        Calibration.from_dict({"threshold": 0.3, "threshold_label_id": 0}, ["a", "b", "c"])
    with pytest.raises(RunError, match="calibration.json: invalid"):
        Calibration.from_dict({"temperature": -2}, ["a", "b"])


# --- reliability diagram -----------------------------------------------------------------------------------


def test_reliability_diagram_is_written(tmp_path: Path) -> None:
    from distiltune.plots import plot_reliability_diagram

    logits, labels = sampled_task(500, 2, seed=7)
    before = reliability_bins(softmax64(logits * 3), labels)
    after = reliability_bins(softmax64(logits), labels)
    assert 0 in before["count"]  # empty bins are part of the test
    path = plot_reliability_diagram(
        {"before (T=1)": before, "after (T=3)": after}, tmp_path / "reliability.png", title="Reliability (test)"
    )
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
