"""ISIC 2024 partial AUC above TPR 0.8 (dermlab/challenge/partial_auc.py and the ``pauc_tpr80`` metric)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from dermlab.challenge.partial_auc import partial_auc_above_tpr, partial_auc_from_counts
from dermlab.metrics.logged import binary_metrics, scalars


def challenge_formula(labels, scores, min_tpr=0.8):
    """The Kaggle host's formula: scikit-learn's McClish-standardised pAUC of the flipped problem, un-standardised."""
    max_fpr = 1 - min_tpr
    standardised = roc_auc_score(1 - np.asarray(labels), 1 - np.asarray(scores), max_fpr=max_fpr)
    return 0.5 * max_fpr**2 + (max_fpr - 0.5 * max_fpr**2) / (1.0 - 0.5) * (standardised - 0.5)


def test_area_above_tpr_08_by_hand():
    # 5 malignant (0.95, 0.9, 0.6, 0.4, 0.2), 4 benign (0.7, 0.5, 0.3, 0.1). By falling score: + + − + − + − + −
    # ROC staircase (FPR, TPR): (0,0) (0,.2) (0,.4) (.25,.4) (.25,.6) (.5,.6) (.5,.8) (.75,.8) (.75,1) (1,1)
    #   TPR 1.0 ┤         ┌──┐
    #   TPR 0.8 ┤      ┌──┘          the band TPR ∈ (0.8, 1] is reached at FPR 0.75:
    #   TPR 0.6 ┤   ┌──┘             area = (1 − 0.75) × 0.2 = 0.05
    #   TPR 0.4 ┤───┘                band (0.6, 0.8] is reached at FPR 0.5: (1 − 0.5) × 0.2 = 0.1
    #           0  .25 .5 .75 1      full AUC = (4 + 4 + 3 + 2 + 1) / 20 = 0.7
    labels = [1, 1, 1, 1, 1, 0, 0, 0, 0]
    scores = [0.95, 0.9, 0.6, 0.4, 0.2, 0.7, 0.5, 0.3, 0.1]
    assert partial_auc_above_tpr(labels, scores) == pytest.approx(0.05)
    assert partial_auc_above_tpr(labels, scores, min_tpr=0.6) == pytest.approx(0.05 + 0.1)
    assert partial_auc_above_tpr(labels, scores, min_tpr=0.0) == pytest.approx(0.7)


def test_a_tie_crossing_the_band_edge_is_a_diagonal_step():
    # 4 malignant (0.9, 0.8, 0.6, 0.3), 4 benign (0.7, 0.3, 0.2, 0.1): the tie at 0.3 moves diagonally from
    # (0.25, 0.75) to (0.5, 1.0), crossing TPR 0.8; on it FPR = TPR − 0.5, so the width to FPR 1 is 1.5 − TPR:
    # ∫ from 0.8 to 1 of (1.5 − t) dt = 0.3 − (1 − 0.64) / 2 = 0.12
    labels, scores = [1, 1, 1, 1, 0, 0, 0, 0], [0.9, 0.8, 0.6, 0.3, 0.7, 0.3, 0.2, 0.1]
    assert partial_auc_above_tpr(labels, scores) == pytest.approx(0.12)


def test_perfect_and_worst_rankings():
    labels = np.array([0, 0, 0, 1, 1])
    assert partial_auc_above_tpr(labels, [0.1, 0.2, 0.3, 0.8, 0.9]) == pytest.approx(0.2)
    assert partial_auc_above_tpr(labels, [0.9, 0.8, 0.7, 0.2, 0.1]) == pytest.approx(0.0)
    # one score for all: the ROC is the diagonal, under which the band above 0.8 holds ½ · 0.2² = 0.02
    assert partial_auc_above_tpr(labels, np.full(5, 0.5)) == pytest.approx(0.02)


@pytest.mark.parametrize("min_tpr", [0.8, 0.5, 0.9])
def test_agrees_with_the_scikit_learn_formula_on_random_tied_data(min_tpr):
    rng = np.random.default_rng(7)
    for _ in range(30):
        n = int(rng.integers(10, 300))
        labels = np.r_[0, 1, rng.integers(0, 2, n - 2)]
        scores = np.round(np.clip(labels * 0.3 + rng.random(n) * 0.7, 0, 1), int(rng.integers(1, 4)))
        assert partial_auc_above_tpr(labels, scores, min_tpr) == pytest.approx(
            challenge_formula(labels, scores, min_tpr), abs=1e-12)


def test_counts_per_distinct_score_give_the_same_area_as_the_expanded_images():
    # bootstrap multiplicities: row b holds malignant[b, g] and benign[b, g] images at the g-th lowest distinct score
    rng = np.random.default_rng(1)
    values = np.linspace(0, 1, 12)
    malignant, benign = rng.integers(0, 4, (6, 12)), rng.integers(0, 4, (6, 12))
    malignant[:, -1] += 1  # both classes in every row
    benign[:, 0] += 1
    for b in range(6):
        labels = np.r_[np.ones(malignant[b].sum()), np.zeros(benign[b].sum())]
        scores = np.r_[np.repeat(values, malignant[b]), np.repeat(values, benign[b])]
        assert partial_auc_from_counts(malignant, benign)[b] == pytest.approx(
            partial_auc_above_tpr(labels, scores), abs=1e-15)
        assert partial_auc_from_counts(malignant, benign)[b] == pytest.approx(
            challenge_formula(labels, scores), abs=1e-12)


def test_the_logged_pauc_tpr80_accumulates_over_batches_and_equals_the_challenge_formula():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 400)
    scores = np.round(np.clip(labels * 0.25 + rng.random(400) * 0.75, 0, 1), 2)
    collection = binary_metrics()
    for part in np.array_split(np.arange(400), 3):  # accumulates over batches
        collection.update(torch.tensor(scores[part]), torch.tensor(labels[part]))
    logged = scalars(collection.compute())["pauc_tpr80"]
    assert logged == pytest.approx(partial_auc_above_tpr(labels, scores), abs=1e-12)
    assert logged == pytest.approx(challenge_formula(labels, scores), abs=1e-12)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="both classes"):
        partial_auc_above_tpr([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="min_tpr"):
        partial_auc_above_tpr([0, 1], [0.2, 0.3], min_tpr=1.0)
    with pytest.raises(ValueError, match="shapes"):
        partial_auc_above_tpr([0, 1], [0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="min_tpr"):
        partial_auc_from_counts([[1, 0]], [[0, 1]], min_tpr=1.2)
