"""The subgroup gap (dermlab.stats.gaps) against a plain reference: scikit-learn's AUC and recall on each group, the
bootstrap and the permutations redrawn in loops from the documented draws, and an exact permutation test by full
enumeration on a tiny set."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import recall_score, roc_auc_score

from dermlab.stats.gaps import group_gap, permuted_membership
from dermlab.stats.intervals import percentile_interval


def _two_groups(n: int = 120, seed: int = 0, shift: float = 0.0):
    """Binary labels, two groups A and B (plus C, ignored); B's scores are noisier by ``shift``."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    groups = rng.choice(["A", "B", "C"], n)
    score = np.clip(0.5 + (labels - 0.5) * 0.5 + rng.normal(0, 0.2 + shift * (groups == "B"), n), 0, 1)
    return labels, np.stack([1 - score, score], 1), groups


def _reference_auc_gap(labels, probabilities, groups, first, second, n_boot, n_permutations, seed, level):
    """The same gap computed image by image with scikit-learn, from the documented draws."""
    kept = np.isin(groups, [first, second])
    y, p, in_first = labels[kept], probabilities[kept, 1], groups[kept] == first

    def gap(y_, p_, member):
        return roc_auc_score(y_[member], p_[member]) - roc_auc_score(y_[~member], p_[~member])

    observed = gap(y, p, in_first)
    rng = np.random.default_rng(seed)  # stratified_resamples' draws: per replicate, per stratum in sorted order
    strata = y * 2 + in_first
    by_stratum = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    replicates = []
    for _ in range(n_boot):
        rows = np.concatenate([m[rng.integers(0, len(m), len(m))] for m in by_stratum])
        replicates.append(gap(y[rows], p[rows], in_first[rows]))
    low, high = percentile_interval(np.array(replicates), level)
    shuffled = permuted_membership(y, in_first, n_permutations, seed)
    null = np.array([gap(y, p, member) for member in shuffled])
    p_value = (1 + np.sum(np.abs(null) >= abs(observed) - 1e-12)) / (1 + n_permutations)
    return observed, low, high, p_value


def test_auc_gap_matches_the_scikit_learn_reference_draw_for_draw():
    labels, probabilities, groups = _two_groups(shift=0.4)
    gap = group_gap(labels, probabilities, groups, "A", "B", "auc", n_boot=200, n_permutations=200, seed=3)
    reference = _reference_auc_gap(labels, probabilities, groups, "A", "B", 200, 200, 3, 0.95)
    assert gap.gap == pytest.approx(reference[0], abs=1e-12)
    assert (gap.low, gap.high) == pytest.approx(reference[1:3], abs=1e-12)
    assert gap.p_value == pytest.approx(reference[3], abs=1e-12)
    assert gap.n_first == (groups == "A").sum() and gap.n_second == (groups == "B").sum()
    assert gap.low <= gap.gap <= gap.high


def test_the_bootstrap_draws_are_the_documented_per_stratum_draws():
    """The reference above redraws the replicates as stratified_resamples documents; check that claim directly."""
    from dermlab.stats.intervals import stratified_resamples

    strata = np.array([0, 1, 1, 2, 0, 2, 2, 1])
    rows = stratified_resamples(strata, 5, seed=4)
    rng = np.random.default_rng(4)
    for row in rows:
        expected = np.concatenate([m[rng.integers(0, len(m), len(m))]
                                   for m in (np.flatnonzero(strata == s) for s in (0, 1, 2))])
        assert (row == expected).all()


def test_sensitivity_gap_by_hand():
    # group A: 4 positives, 3 found (0.75); group B: 2 positives, 1 found (0.5); threshold 0.5
    labels = np.array([1, 1, 1, 1, 0, 1, 1, 0])
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.6, 0.4, 0.3])
    groups = np.array(["A"] * 5 + ["B"] * 3)
    gap = group_gap(labels, np.stack([1 - p, p], 1), groups, "A", "B", "sensitivity", n_boot=50, n_permutations=50)
    assert gap.first_value == pytest.approx(recall_score(labels[:5], p[:5] > 0.5)) == pytest.approx(0.75)
    assert gap.second_value == pytest.approx(0.5) and gap.gap == pytest.approx(0.25)


def test_permutation_p_value_approaches_the_exact_test_by_enumeration():
    """Six images per class over two groups: every within-class relabelling enumerated gives the exact p; many
    Monte-Carlo shuffles must land near it."""
    labels = np.array([0] * 6 + [1] * 6)
    score = np.array([0.1, 0.2, 0.3, 0.35, 0.6, 0.7, 0.4, 0.5, 0.8, 0.85, 0.9, 0.95])
    groups = np.array(["A", "A", "A", "B", "B", "B", "B", "A", "A", "B", "A", "B"])
    probabilities = np.stack([1 - score, score], 1)

    def auc_gap(member):
        return (roc_auc_score(labels[member], score[member]) - roc_auc_score(labels[~member], score[~member]))

    observed = auc_gap(groups == "A")
    negatives, positives = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    extreme = total = 0
    for chosen_negatives in itertools.combinations(negatives, 3):
        for chosen_positives in itertools.combinations(positives, 3):
            member = np.zeros(12, bool)
            member[list(chosen_negatives) + list(chosen_positives)] = True
            extreme += abs(auc_gap(member)) >= abs(observed) - 1e-12
            total += 1
    exact = extreme / total
    gap = group_gap(labels, probabilities, groups, "A", "B", "auc", n_boot=10, n_permutations=20000, seed=1)
    assert gap.gap == pytest.approx(observed)
    assert gap.p_value == pytest.approx(exact, abs=0.015)


def test_no_difference_gives_large_p_and_a_real_difference_small_p():
    labels, probabilities, groups = _two_groups(n=400, seed=5)
    same = group_gap(labels, probabilities, groups, "A", "B", n_boot=300, n_permutations=500)
    labels, probabilities, groups = _two_groups(n=400, seed=5, shift=0.6)
    worse = group_gap(labels, probabilities, groups, "A", "B", n_boot=300, n_permutations=500)
    assert same.p_value > 0.05 and same.low < 0 < same.high
    assert worse.p_value < 0.01 and worse.low > 0


def test_undefined_metric_and_empty_group_are_nan_with_a_reason():
    labels = np.array([0, 1, 0, 0])
    probabilities = np.full((4, 2), 0.5)
    one_class = group_gap(labels, probabilities, ["A", "A", "B", "B"], "A", "B", n_boot=5, n_permutations=5)
    assert np.isnan(one_class.gap) and "undefined in B" in one_class.note
    empty = group_gap(labels, probabilities, ["A"] * 4, "A", "B", n_boot=5, n_permutations=5)
    assert np.isnan(empty.p_value) and empty.note == "no image of B"
    with pytest.raises(ValueError, match="metric must be one of"):
        group_gap(labels, probabilities, ["A"] * 4, "A", "B", metric="f1")


def test_a_group_with_few_images_of_a_class_is_flagged_and_an_undefined_group_keeps_the_other_value():
    labels = np.array([0, 1] * 10 + [0, 1, 0])  # A: 10 + 10; B: 2 negatives, 1 positive
    score = np.array([0.2, 0.8] * 10 + [0.9, 0.1, 0.3])
    groups = np.array(["A"] * 20 + ["B"] * 3)
    probabilities = np.stack([1 - score, score], 1)
    gap = group_gap(labels, probabilities, groups, "A", "B", n_boot=50, n_permutations=50)
    assert (gap.gap, gap.low, gap.high) == pytest.approx((1.0, 1.0, 1.0))  # a collapsed interval ...
    assert gap.note == "interval too narrow to trust (only 1 positives in B, 2 negatives in B)"  # ... flagged
    keep = np.r_[0:21, 22]  # B without its positive
    only_negatives = group_gap(labels[keep], probabilities[keep], groups[keep], "A", "B", n_boot=5, n_permutations=5)
    assert only_negatives.first_value == pytest.approx(1.0) and np.isnan(only_negatives.second_value)
    assert "undefined in B" in only_negatives.note
