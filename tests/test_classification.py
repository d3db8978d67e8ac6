import itertools
import json
import math

import numpy as np
import pytest

from faceattr.eval.classification import (accuracy, balanced_accuracy, binary_report, expected_calibration_error, json_safe, reliability_bins, report, roc_auc)


def test_accuracy_and_balanced_accuracy_by_hand():
    y, p = [1, 1, 1, 0], [0.9, 0.8, 0.3, 0.1]
    assert accuracy(y, p) == 0.75
    assert balanced_accuracy(y, p) == pytest.approx((2 / 3 + 1) / 2)
    assert accuracy([1, 0], [0.5, 0.49]) == 1.0  # p >= 0.5 means "has it"
    assert math.isnan(balanced_accuracy([1, 1], [0.9, 0.1]))


def test_roc_auc_by_hand_and_against_all_pairs():
    assert roc_auc([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1]) == 0.75
    assert roc_auc([1, 0], [0.5, 0.5]) == 0.5
    assert roc_auc([0, 1], [0.2, 0.7]) == 1.0 and roc_auc([1, 0], [0.2, 0.7]) == 0.0
    assert math.isnan(roc_auc([0, 0], [0.2, 0.7]))
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 60), rng.integers(0, 5, 60) / 4  # many ties
    pairs = [(a, b) for a, b in itertools.product(s[y == 1], s[y == 0])]
    brute = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs])
    assert roc_auc(y, s) == pytest.approx(brute)


def test_calibration_error_and_bins_by_hand():
    y, p = [0, 1, 1, 1], [0.05, 0.15, 0.95, 0.85]
    assert expected_calibration_error(y, p) == pytest.approx((0.05 + 0.85 + 0.15 + 0.05) / 4)
    bins = reliability_bins([0, 1, 1], [0.0, 1.0, 0.55], n_bins=4)
    assert bins["count"] == [1, 0, 1, 1] and bins["edges"] == [0, 0.25, 0.5, 0.75, 1]
    assert bins["mean_p"][3] == 1.0 and bins["frac_positive"][0] == 0.0 and math.isnan(bins["mean_p"][1])
    assert expected_calibration_error([1, 0], [1.0, 0.0]) == 0.0
    assert math.isnan(expected_calibration_error([], []))


def test_report_per_attribute_and_json():
    y = np.array([[1, 0], [0, 0], [1, 0]], np.float32)
    p = np.array([[0.8, 0.2], [0.3, 0.6], [0.6, 0.1]], np.float32)
    r = report(y, p, ["A", "B"])
    assert json_safe(r["A"]) == json_safe(binary_report(y[:, 0], p[:, 0]))
    assert r["A"]["accuracy"] == 1.0 and r["A"]["roc_auc"] == 1.0 and r["A"]["positive_rate"] == pytest.approx(2 / 3)
    assert r["A"]["bce"] == pytest.approx(-np.mean(np.log([0.8, 0.7, 0.6])), rel=1e-5)
    assert r["B"]["accuracy"] == pytest.approx(2 / 3) and math.isnan(r["B"]["roc_auc"])
    text = json.dumps(json_safe(r), allow_nan=False)
    assert json.loads(text)["B"]["roc_auc"] is None
    with pytest.raises(ValueError):
        accuracy([1, 0], [0.5])
