"""Open-set calibration: leave-one-out pairs and score -> probability fits."""

from __future__ import annotations

import numpy as np
import pytest

from wildspace.reid.calibration import (
    Calibration,
    CalibrationError,
    calibrate_gallery,
    calibration_pairs,
    fit_calibration,
)


def test_pairs_from_a_hand_made_gallery():
    ids = ["a", "a", "b"]
    sim = np.array([[1.0, 0.9, 0.2], [0.9, 1.0, 0.3], [0.2, 0.3, 1.0]])
    scores, same = calibration_pairs(sim, ids)
    # image 0: a->0.9 (pos), b->0.2 (neg); image 1: a->0.9 (pos), b->0.3 (neg);
    # image 2: a->0.3 (neg), b has no other image
    pairs = sorted(zip(scores.tolist(), same.tolist()))
    assert pairs == sorted([(0.9, True), (0.9, True), (0.2, False), (0.3, False), (0.3, False)])


@pytest.mark.parametrize("method", ["logistic", "isotonic"])
def test_separable_scores_give_a_threshold_between_the_classes(method):
    rng = np.random.default_rng(0)
    pos = rng.uniform(0.7, 1.0, 40)
    neg = rng.uniform(0.0, 0.4, 120)
    cal = fit_calibration(np.r_[pos, neg], np.r_[np.ones(40, bool), np.zeros(120, bool)], method)
    assert 0.4 <= cal.threshold <= 0.7
    p = cal.probability([0.0, 0.2, 0.95])
    assert p[0] < 0.5 and p[1] < 0.5 and p[2] > 0.5
    assert np.all(np.diff(cal.probability(np.linspace(0, 1, 50))) >= -1e-12)  # monotone
    assert cal.is_known([0.9]).tolist() == [True]
    again = Calibration.from_dict(cal.to_dict())
    assert again.probability([0.55]) == pytest.approx(cal.probability([0.55]))


def test_log_scale_for_match_counts():
    pos = np.array([30, 45, 60, 80, 120], float)
    neg = np.array([0, 0, 1, 2, 0, 3, 5, 0, 0, 2], float)
    cal = fit_calibration(np.r_[pos, neg], np.r_[np.ones(5, bool), np.zeros(10, bool)],
                          log_scale=True)
    assert 5 < cal.threshold < 30
    assert cal.probability([0])[0] < 0.1 and cal.probability([200])[0] > 0.9


def test_one_class_is_a_clear_error():
    with pytest.raises(CalibrationError, match="two identities"):
        fit_calibration([0.1, 0.2], [False, False])
    with pytest.raises(ValueError, match="logistic, isotonic"):
        fit_calibration([0.1, 0.9], [False, True], method="platt")


def test_gallery_calibration_respects_exclusions():
    ids = ["a", "a", "b", "b"]
    sim = np.array([[1, .9, .1, .2], [.9, 1, .2, .1], [.1, .2, 1, .8], [.2, .1, .8, 1]], float)
    cal = calibrate_gallery(sim, ids)
    assert cal.positives == 4 and cal.negatives == 4
    assert 0.2 < cal.threshold < 0.8
    excl = np.zeros((4, 4), bool)
    excl[0, 1] = excl[1, 0] = True  # a's two images are one event: no positive for a
    cal2 = calibrate_gallery(sim, ids, exclude=excl)
    assert cal2.positives == 2
