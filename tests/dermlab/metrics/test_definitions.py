"""``dermlab/metrics/definitions.py``: the vectorised resample metrics against torchmetrics and by hand."""

from __future__ import annotations

import numpy as np
import pytest

from dermlab.metrics.definitions import binary_metric_values as binary_metrics_resampled
from dermlab.stats.intervals import resample_counts, stratified_resamples
from tests.helpers.bootstrap import torchmetrics_values


def tied_case(rng, n):
    labels = np.r_[0, 1, rng.integers(0, 2, n - 2)]
    scores = np.round(np.clip(labels * 0.3 + rng.random(n) * 0.7, 0, 1), int(rng.integers(1, 3)))
    scores[:2] = 1.0  # p = 1 has an ECE bin of its own
    scores[2:4] = 0.5  # exactly on the threshold: negative (p > 0.5 is positive)
    return labels, scores


def test_resample_metrics_equal_torchmetrics_on_the_test_set_and_on_a_resample():
    rng = np.random.default_rng(0)
    for n in (7, 60, 500):
        labels, scores = tied_case(rng, n)
        ones = binary_metrics_resampled(labels, scores, np.ones((1, n)))
        reference = torchmetrics_values(labels, scores)
        assert set(ones) == set(reference)
        for name, value in reference.items():
            assert ones[name][0] == pytest.approx(value, abs=1e-6), (n, name)
        # a resample given as multiplicities equals torchmetrics on the resampled rows themselves
        rows = stratified_resamples(labels, 3, seed=n)
        resampled = binary_metrics_resampled(labels, scores, resample_counts(rows, n))
        for b, chosen in enumerate(rows):
            for name, value in torchmetrics_values(labels[chosen], scores[chosen]).items():
                assert resampled[name][b] == pytest.approx(value, abs=1e-6), (n, b, name)


def test_resample_metrics_by_hand():
    # labels [1, 0, 1, 0], scores [0.9, 0.6, 0.6, 0.2]; image 0 drawn twice, image 2 never: positives {0.9, 0.9},
    # negatives {0.6, 0.2}. AUC: both positives beat both negatives → 1. Threshold 0.5: TP 2, TN 1 (0.2), FP 1
    # (0.6) → sens 1, spec 1/2, acc 3/4. AP: the positives sit on top → 1.
    # ECE: bin [0.8667, 0.9333) holds 0.9 twice, both positive → |1.8 − 2| = 0.2; bin [0.6, 0.6667) holds 0.6
    # (negative) → 0.6; bin [0.2, 0.2667) holds 0.2 (negative) → 0.2; (0.2 + 0.6 + 0.2) / 4 = 0.25
    values = binary_metrics_resampled([1, 0, 1, 0], [0.9, 0.6, 0.6, 0.2], [[2, 1, 0, 1]])
    expected = {"auc": 1, "sensitivity": 1, "specificity": 0.5, "accuracy": 0.75, "average_precision": 1,
                "pauc_tpr80": 0.2, "ece": 0.25}
    assert {k: float(v[0]) for k, v in values.items()} == pytest.approx(expected)
