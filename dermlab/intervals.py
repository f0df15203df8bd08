"""Stratified bootstrap confidence intervals for a test metric (percentile method).

Each of ``n_boot`` replicates resamples, with replacement, the test images **within each class** (so every
replicate keeps the class counts, and a binary AUC is always defined), recomputes the metric, and the interval is
the (α/2, 1 − α/2) percentiles of the replicates (Efron & Tibshirani 1993, ch. 13). With the same ``seed`` the
interval is the same number to the last digit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap interval, e.g. ``0.812 [0.741, 0.873]``."""

    estimate: float
    low: float
    high: float
    level: float
    n_boot: int

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def stratified_bootstrap(metric: Callable[[np.ndarray, np.ndarray], float], labels, scores, n_boot: int = 2000,
                         seed: int = 0, level: float = 0.95) -> Interval:
    """``metric(labels, scores)`` on the test set with its stratified bootstrap percentile interval.

    Args:
        metric: a function of (labels (N,), scores (N,) or (N, C)) returning a float, e.g. ``roc_auc_score``.
        labels: (N,) class labels; resampling keeps each class's count.
        scores: (N,) or (N, C) predictions, resampled with their labels.
        n_boot: bootstrap replicates (≥ 1).
        seed: seed of the resampling (NumPy ``default_rng``).
        level: coverage of the interval, in (0, 1).

    Raises:
        ValueError: on an empty test set, mismatched lengths, ``n_boot`` < 1 or ``level`` outside (0, 1).
    """
    labels, scores = np.asarray(labels), np.asarray(scores)
    if len(labels) == 0 or len(labels) != len(scores):
        raise ValueError(f"need as many scores as labels (> 0), got {len(labels)} labels and {len(scores)} scores")
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"n_boot must be ≥ 1 and level in (0, 1), got {n_boot} and {level}")
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    replicates = np.empty(n_boot)
    for b in range(n_boot):
        rows = np.concatenate([rng.choice(members, size=len(members), replace=True) for members in by_class])
        replicates[b] = metric(labels[rows], scores[rows])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return Interval(float(metric(labels, scores)), float(low), float(high), level, n_boot)


def binary_auc(labels, scores) -> float:
    """ROC AUC of 0/1 ``labels`` by ``scores`` as the Mann–Whitney statistic, ties counted ½:
    (R₁ − n₁(n₁ + 1)/2) / (n₁ n₀), R₁ the sum of the positives' mid-ranks (Hanley & McNeil 1982). Equal to
    scikit-learn's ``roc_auc_score`` and ~50× faster on small sets, which a bootstrap calls thousands of times."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("the AUC needs both classes among the labels")
    ranks = rankdata(np.asarray(scores, dtype=float))
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def auc_interval(labels, scores, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Binary ROC AUC (labels 0/1, scores = P(positive)) with its stratified bootstrap interval."""
    return stratified_bootstrap(binary_auc, labels, scores, n_boot, seed, level)
