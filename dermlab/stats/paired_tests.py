"""Paired tests of two classifiers scored on the same test images, and Holm's multiplicity adjustment.

* :func:`delong` compares two correlated ROC AUCs (DeLong, DeLong & Clarke-Pearson 1988, Biometrics 44:837),
  computed with the midrank algorithm of Sun & Xu 2014 (IEEE Signal Processing Letters 21:1389).
* :func:`mcnemar` compares two classifiers' correctness on the same images (McNemar 1947, Psychometrika 12:153).
* :func:`holm` adjusts a family of p-values (Holm 1979, Scandinavian Journal of Statistics 6:65).

Plain NumPy/SciPy functions; wrong arguments (lengths, a single class) are programming errors and raise
``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binomtest, chi2, norm, rankdata

from dermlab.metrics import definitions

MCNEMAR_EXACT_BELOW = 25  # discordant pairs under which McNemar's test is the exact binomial one


@dataclass(frozen=True)
class DeLongResult:
    """Two AUCs on the same images, z = (auc_a − auc_b) / SE(difference) and its two-sided p-value."""

    auc_a: float
    auc_b: float
    z: float
    p: float


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test: ``b`` images only A classifies right, ``c`` only B; ``method`` "exact" or "chi2_cc"."""

    statistic: float
    p: float
    b: int
    c: int
    method: str


def _binary_labels(labels: ArrayLike, *arrays: ArrayLike) -> tuple[np.ndarray, list[np.ndarray]]:
    """(N,) bool ``labels`` and ``arrays`` as NumPy arrays, each checked to be (N,)."""
    labels = np.asarray(labels)
    arrays = [np.asarray(a) for a in arrays]
    if labels.ndim != 1 or any(a.shape != labels.shape for a in arrays):
        raise ValueError(f"need 1-D labels and predictions of one length, got shapes {labels.shape} and "
                         f"{[a.shape for a in arrays]}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0/1, got values {np.unique(labels)[:5].tolist()}")
    return labels.astype(bool), arrays


def delong_components(labels: ArrayLike, scores: ArrayLike) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong's structural components of one predictor, by midranks (Sun & Xu 2014, Eqs. 7-8).

    Args:
        labels: (N,) 0/1, both classes present.
        scores: (N,) higher = more positive.

    Returns:
        ``(auc, v10, v01)``: v10 (m,) for each positive the share of negatives it outscores, v01 (n,) for each
        negative the share of positives that outscore it, ties counting ½; the AUC is the mean of either.
        With T_z the midranks among all N images, T_x among the m positives, T_y among the n negatives:
        v10 = (T_z − T_x) / n, v01 = 1 − (T_z − T_y) / m.
    """
    labels, (scores,) = _binary_labels(labels, scores)
    scores = scores.astype(float)
    m, n = int(labels.sum()), int((~labels).sum())
    if m == 0 or n == 0:
        raise ValueError("DeLong's test needs both classes among the labels")
    all_ranks = rankdata(scores)
    v10 = (all_ranks[labels] - rankdata(scores[labels])) / n
    v01 = 1 - (all_ranks[~labels] - rankdata(scores[~labels])) / m
    return float(v10.mean()), v10, v01


def delong(labels: ArrayLike, scores_a: ArrayLike, scores_b: ArrayLike) -> DeLongResult:
    """DeLong's test of two correlated ROC AUCs, both predictors scored on the same images.

    Args:
        labels: (N,) 0/1 truth, both classes present.
        scores_a: (N,) scores of predictor A (higher = more positive).
        scores_b: (N,) scores of predictor B, of the same images in the same order.

    Returns:
        :class:`DeLongResult` with z = (AUC_A − AUC_B) / √(S_AA + S_BB − 2 S_AB), S = S10 / m + S01 / n, S10 and
        S01 the sample covariance matrices (denominator m − 1, n − 1) of the two predictors' structural components
        over the m positives and n negatives (DeLong et al. 1988, Eq. 5 and the text after it), and the two-sided
        normal p-value. When the variance of the difference is 0 (e.g. identical predictions) z = 0 and p = 1.

    Raises:
        ValueError: mismatched lengths, labels not 0/1, a single class, or fewer than 2 images of a class.
    """
    labels, (scores_a, scores_b) = _binary_labels(labels, scores_a, scores_b)
    if min(labels.sum(), (~labels).sum()) < 2:
        raise ValueError("DeLong's variance needs at least 2 positives and 2 negatives")
    _, v10_a, v01_a = delong_components(labels, scores_a)
    _, v10_b, v01_b = delong_components(labels, scores_b)
    # the reported AUCs by the suite's one definition (the mean of either component vector is the same number)
    auc_a, auc_b = (float(definitions.binary_auc(labels, scores)[0]) for scores in (scores_a, scores_b))
    s10, s01 = np.cov(np.stack([v10_a, v10_b])), np.cov(np.stack([v01_a, v01_b]))
    s = s10 / len(v10_a) + s01 / len(v01_a)
    variance = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    if variance <= 1e-15 * max(1.0, s[0, 0] + s[1, 1]):  # identical predictors: no difference to test
        return DeLongResult(auc_a, auc_b, 0.0, 1.0)
    z = (auc_a - auc_b) / math.sqrt(variance)
    return DeLongResult(auc_a, auc_b, float(z), float(2 * norm.sf(abs(z))))


def mcnemar(labels: ArrayLike, predicted_a: ArrayLike, predicted_b: ArrayLike) -> McNemarResult:
    """McNemar's test that two classifiers err equally often on the same images.

    Args:
        labels: (N,) true classes (any comparable values).
        predicted_a: (N,) the classes A predicts (compared with ``labels`` by ``==``).
        predicted_b: (N,) the classes B predicts, for the same images in the same order.

    Returns:
        :class:`McNemarResult` with b = #(A right, B wrong), c = #(A wrong, B right). With fewer than 25
        discordant pairs (b + c < 25) the test is the exact two-sided binomial test of b successes in b + c
        trials with p = ½ (``scipy.stats.binomtest``; ``statistic`` = min(b, c), ``method`` "exact"); otherwise
        the chi-square with continuity correction (``|b − c|`` − 1)² / (b + c) on 1 degree of freedom (``method``
        "chi2_cc"). No discordant pair: statistic 0, p = 1 (exact).

    Raises:
        ValueError: arrays of different lengths or empty.
    """
    labels, a, b_pred = (np.asarray(x) for x in (labels, predicted_a, predicted_b))
    if labels.ndim != 1 or len(labels) == 0 or a.shape != labels.shape or b_pred.shape != labels.shape:
        raise ValueError(f"need non-empty 1-D labels and predictions of one length, got shapes {labels.shape}, "
                         f"{a.shape} and {b_pred.shape}")
    right_a, right_b = a == labels, b_pred == labels
    b, c = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    if b + c == 0:
        return McNemarResult(0.0, 1.0, b, c, "exact")
    if b + c < MCNEMAR_EXACT_BELOW:
        return McNemarResult(float(min(b, c)), float(binomtest(b, b + c, 0.5).pvalue), b, c, "exact")
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    return McNemarResult(float(statistic), float(chi2.sf(statistic, 1)), b, c, "chi2_cc")


def holm(pvalues: Sequence[float] | np.ndarray) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (Holm 1979).

    With p₍₁₎ ≤ … ≤ p₍ₘ₎ sorted, the adjusted p₍ᵢ₎ is max over j ≤ i of min(1, (m − j + 1) p₍ⱼ₎): monotone in the
    sorted order and capped at 1. Rejecting where the adjusted p ≤ α controls the family-wise error at α.

    Raises:
        ValueError: a p-value outside [0, 1] or NaN.
    """
    p = np.asarray(pvalues, dtype=float).ravel()
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return [float(x) for x in adjusted]
