"""Paired tests (dermlab/stats/paired_tests.py): DeLong, McNemar and Holm on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from dermlab.stats.paired_tests import delong, delong_components, holm, mcnemar

# 3 positives then 3 negatives; B ties a positive with a negative at 0.3.
LABELS = [1, 1, 1, 0, 0, 0]
A = [0.9, 0.6, 0.3, 0.5, 0.2, 0.1]
B = [0.7, 0.4, 0.3, 0.8, 0.3, 0.1]


def test_structural_components_by_hand():
    # A: positive 0.9 beats all 3 negatives → 1; 0.6 beats 0.5, 0.2, 0.1 → 1; 0.3 beats 0.2, 0.1 → 2/3.
    #    negative 0.5 is beaten by 0.9, 0.6 → 2/3; 0.2 and 0.1 by all three → 1, 1.   AUC_A = 8/9.
    # B: positive 0.7 beats 0.3, 0.1 → 2/3; 0.4 → 2/3; 0.3 ties 0.3 (½) and beats 0.1 → 1.5/3 = 1/2.
    #    negative 0.8 beaten by none → 0; 0.3 beaten by 0.7, 0.4 and tied with 0.3 → 2.5/3 = 5/6; 0.1 → 1.
    #    AUC_B = 11/18.
    auc, v10, v01 = delong_components(LABELS, A)
    assert auc == pytest.approx(8 / 9)
    np.testing.assert_allclose(v10, [1, 1, 2 / 3])
    np.testing.assert_allclose(v01, [2 / 3, 1, 1])
    auc, v10, v01 = delong_components(LABELS, B)
    assert auc == pytest.approx(11 / 18)
    np.testing.assert_allclose(v10, [2 / 3, 2 / 3, 1 / 2])
    np.testing.assert_allclose(v01, [0, 5 / 6, 1])


def test_delong_z_by_hand():
    # V10 deviations from the means: A [1/9, 1/9, −2/9], B [1/18, 1/18, −2/18]  (ddof 1, divide by 2)
    #   S10 = [[1/27, 1/54], [1/54, 1/108]]
    # V01 deviations: A [−2/9, 1/9, 1/9], B [−11/18, 4/18, 7/18]
    #   S01 = [[1/27, 11/108], [11/108, 31/108]]
    # S = S10/3 + S01/3: S_AA = 2/81, S_BB = 8/81, S_AB = 13/324
    # var(AUC_A − AUC_B) = 2/81 + 8/81 − 26/324 = 14/324 = 7/162
    # z = (8/9 − 11/18) / √(7/162) = (5/18) / 0.2078699 = 1.336306
    result = delong(LABELS, A, B)
    assert (result.auc_a, result.auc_b) == (pytest.approx(8 / 9), pytest.approx(11 / 18))
    assert result.z == pytest.approx((5 / 18) / math.sqrt(7 / 162))
    assert result.z == pytest.approx(1.336306, abs=1e-6)
    assert result.p == pytest.approx(2 * norm.sf(1.336306), abs=1e-6)  # ≈ 0.1815


def _delong_by_pairs(labels, a, b):
    """Reference: DeLong 1988 directly from the pairwise kernel ψ(x, y) = 1, ½, 0 (O(m·n), no ranks)."""
    labels = np.asarray(labels, bool)
    components = []
    for s in (np.asarray(a, float), np.asarray(b, float)):
        psi = (s[labels][:, None] > s[~labels][None]) + 0.5 * (s[labels][:, None] == s[~labels][None])
        components.append((psi.mean(1), psi.mean(0)))
    s10 = np.cov([components[0][0], components[1][0]])
    s01 = np.cov([components[0][1], components[1][1]])
    cov = s10 / labels.sum() + s01 / (~labels).sum()
    return (components[0][0].mean() - components[1][0].mean()) / math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])


def test_midranks_agree_with_the_pairwise_definition_on_tied_data():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 120)
    a, b = np.round(labels + rng.normal(0, 1, 120), 1), np.round(labels + rng.normal(0, 1.5, 120), 1)
    assert delong(labels, a, b).z == pytest.approx(_delong_by_pairs(labels, a, b), rel=1e-10)


def test_identical_predictors_give_p_one():
    result = delong(LABELS, A, A)
    assert (result.z, result.p) == (0.0, 1.0)
    assert result.auc_a == result.auc_b


def test_a_strongly_better_predictor_on_200_images_gives_a_small_p_and_swapping_flips_z():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 100)
    good, poor = labels * 2.0 + rng.normal(0, 1, 200), labels * 0.3 + rng.normal(0, 1, 200)
    forward, backward = delong(labels, good, poor), delong(labels, poor, good)
    assert forward.auc_a > 0.85 and forward.auc_b < 0.7
    assert forward.p < 1e-6
    assert backward.z == pytest.approx(-forward.z)
    assert backward.p == pytest.approx(forward.p)
    assert (backward.auc_a, backward.auc_b) == (forward.auc_b, forward.auc_a)


def test_delong_refuses_bad_arguments():
    with pytest.raises(ValueError, match="one length"):
        delong([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2])
    with pytest.raises(ValueError, match="2 positives"):
        delong([0, 0, 0, 1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4])


def _pairs(b, c, both_right=5, both_wrong=2):
    """Labels and two prediction vectors with b (A right, B wrong) and c (A wrong, B right) discordant pairs."""
    labels = np.zeros(b + c + both_right + both_wrong, int)
    a = np.concatenate([np.zeros(b), np.ones(c), np.zeros(both_right), np.ones(both_wrong)]).astype(int)
    p = np.concatenate([np.ones(b), np.zeros(c), np.zeros(both_right), np.ones(both_wrong)]).astype(int)
    return labels, a, p


def test_mcnemar_exact_by_hand():
    # b = 3, c = 9: 12 discordant pairs < 25 → exact. P(X ≤ 3 | n = 12, ½) = (1 + 12 + 66 + 220) / 4096
    # = 299 / 4096; two-sided (symmetric) 598 / 4096 = 0.1459961
    result = mcnemar(*_pairs(3, 9))
    assert (result.b, result.c, result.method) == (3, 9, "exact")
    assert result.p == pytest.approx(598 / 4096)
    assert result.statistic == 3


def test_mcnemar_chi_square_with_continuity_correction_by_hand():
    # b = 10, c = 25: 35 ≥ 25 → (|10 − 25| − 1)² / 35 = 196 / 35 = 5.6; χ²₁ tail = erfc(√(5.6 / 2)) = 0.01796
    result = mcnemar(*_pairs(10, 25))
    assert (result.b, result.c, result.method) == (10, 25, "chi2_cc")
    assert result.statistic == pytest.approx(5.6)
    assert result.p == pytest.approx(math.erfc(math.sqrt(5.6 / 2)))
    swapped = mcnemar(_pairs(10, 25)[0], _pairs(10, 25)[2], _pairs(10, 25)[1])
    assert (swapped.b, swapped.c, swapped.p) == (25, 10, pytest.approx(result.p))


def test_mcnemar_without_discordant_pairs_gives_p_one():
    labels, a, _ = _pairs(0, 0)
    assert mcnemar(labels, a, a).p == 1.0


@pytest.mark.parametrize(("b", "c"), [(3, 9), (10, 25), (12, 12), (0, 7)])
def test_mcnemar_agrees_with_statsmodels(b, c):
    contingency = pytest.importorskip("statsmodels.stats.contingency_tables")
    ours = mcnemar(*_pairs(b, c))
    theirs = contingency.mcnemar([[5, b], [c, 2]], exact=b + c < 25, correction=True)
    assert ours.p == pytest.approx(theirs.pvalue)
    assert ours.statistic == pytest.approx(theirs.statistic)


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 → ×3, ×2, ×1 = 0.03, 0.06, 0.04 → running max 0.03, 0.06, 0.06; back in input order
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # capped at 1: 0.4 × 3 = 1.2 → 1, then max(1, 0.6 × 2) = 1, max(1, 0.7) = 1
    assert holm([0.7, 0.4, 0.6]) == pytest.approx([1.0, 1.0, 1.0])
    assert holm([]) == []
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.2, 1.5])
