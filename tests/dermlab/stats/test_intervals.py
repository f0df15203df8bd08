"""Stratified bootstrap intervals (dermlab/stats/intervals.py), checked on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dermlab.stats.intervals import auc_interval, binary_auc, stratified_bootstrap, stratified_resamples


def test_binary_auc_is_the_mann_whitney_statistic_with_half_ties():
    # positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4) 1, (0.8>0.1) 1, (0.4=0.4) ½, (0.4>0.1) 1 → 3.5 / 4
    assert binary_auc([1, 1, 0, 0], [0.8, 0.4, 0.4, 0.1]) == pytest.approx(0.875)
    rng = np.random.default_rng(1)
    labels, scores = rng.integers(0, 2, 300), rng.integers(0, 20, 300) / 20  # many ties
    assert binary_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_perfectly_separated_scores_give_auc_one_with_a_zero_width_interval():
    interval = auc_interval([0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.8, 0.9], n_boot=200)
    assert (interval.estimate, interval.low, interval.high) == (1.0, 1.0, 1.0)


def test_resampling_keeps_each_class_count():
    """The mean of the labels is the positive share in every replicate: its interval is a single point."""
    labels = np.array([0] * 7 + [1] * 3)
    interval = stratified_bootstrap(lambda y, s: float(y.mean()), labels, np.zeros(10), n_boot=300)
    assert interval.low == interval.high == pytest.approx(0.3)


def test_the_interval_holds_the_estimate_shrinks_with_n_and_repeats_with_the_seed():
    rng = np.random.default_rng(0)

    def sample(n):
        labels = rng.integers(0, 2, n)
        return labels, labels * 0.8 + rng.normal(0, 0.5, n)  # AUC ≈ 0.87

    small, large = auc_interval(*sample(60), n_boot=500), auc_interval(*sample(2000), n_boot=500)
    for interval in (small, large):
        assert interval.low <= interval.estimate <= interval.high
    assert large.high - large.low < (small.high - small.low) / 3  # width ~ 1/√n: √(2000/60) ≈ 5.8
    labels, scores = sample(80)
    assert auc_interval(labels, scores, seed=3) == auc_interval(labels, scores, seed=3)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="as many scores"):
        auc_interval([0, 1], [0.5])
    with pytest.raises(ValueError, match="level"):
        auc_interval([0, 1], [0.2, 0.7], level=1.5)


def test_stratified_resamples_keep_every_stratum_count():
    strata = np.array([2, 0, 1, 1, 0, 2, 2, 1, 1])
    for row in stratified_resamples(strata, 50, seed=1):
        assert np.bincount(strata[row]).tolist() == np.bincount(strata).tolist()
