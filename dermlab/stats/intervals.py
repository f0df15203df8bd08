"""Stratified bootstrap confidence intervals for a test metric (percentile method).

Each of ``n_boot`` replicates resamples, with replacement, the test images **within each class** (so every
replicate keeps the class counts, and a binary AUC is always defined), recomputes the metric, and the interval is
the (α/2, 1 − α/2) percentiles of the replicates (Efron & Tibshirani 1993, ch. 13). With the same ``seed`` the
interval is the same number to the last digit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from dermlab.metrics import definitions


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


def stratified_bootstrap(metric: Callable[[np.ndarray, np.ndarray], float], labels: ArrayLike, scores: ArrayLike,
                         n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
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
    replicates = np.array([metric(labels[rows], scores[rows]) for rows in stratified_resamples(labels, n_boot, seed)])
    low, high = percentile_interval(replicates, level)
    return Interval(float(metric(labels, scores)), float(low), float(high), level, n_boot)


def stratified_resamples(strata: ArrayLike, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, N) row indices: each row one resample, with replacement, of the images within each stratum.

    Args:
        strata: (N,) stratum of each image (its class; for a multi-label truth, its row of labels).
        n_boot: how many resamples (≥ 1).
        seed: seed of NumPy's ``default_rng``; the draws are those :func:`stratified_bootstrap` has always made
            (per resample, per stratum in sorted order, ``rng.choice`` of the stratum's rows), so its intervals keep
            their digits. They are made in one call (``choice`` with replacement draws ``integers(0, size)``; here
            every resample's and stratum's draws at once, in that order): 100× faster for seven classes and
            2,000 resamples; a test checks them against the per-stratum loop.

    Returns:
        Row b lists the chosen rows stratum after stratum; every stratum keeps its count.

    Raises:
        ValueError: empty ``strata`` or ``n_boot`` < 1.
    """
    strata = np.asarray(strata)
    if len(strata) == 0 or n_boot < 1:
        raise ValueError(f"need images and n_boot ≥ 1, got {len(strata)} images and n_boot {n_boot}")
    rng = np.random.default_rng(seed)
    by_stratum = [np.flatnonzero(strata == c) for c in np.unique(strata)]
    members = np.concatenate(by_stratum)
    sizes = np.concatenate([np.full(len(m), len(m)) for m in by_stratum])  # each position's stratum size
    starts = np.repeat(np.cumsum([0, *map(len, by_stratum)])[:-1], list(map(len, by_stratum)))
    return members[starts + rng.integers(0, np.tile(sizes, (n_boot, 1)))]


def resample_counts(rows: np.ndarray, n: int) -> np.ndarray:
    """(B, n) multiplicity of each of ``n`` images in each resample of ``rows`` (B, N) (as from
    :func:`stratified_resamples`): how often the resample drew it, 0 when never."""
    rows = np.asarray(rows)
    offsets = n * np.arange(len(rows))[:, None]
    return np.bincount((rows + offsets).ravel(), minlength=len(rows) * n).reshape(len(rows), n).astype(float)


def percentile_interval(replicates: ArrayLike, level: float = 0.95) -> np.ndarray:
    """The (α/2, 1 − α/2) percentiles of ``replicates`` along axis 0, α = 1 − ``level`` (NumPy's linear
    interpolation between order statistics): (2,) for (B,) replicates, (2, ...) for (B, ...).

    Raises:
        ValueError: ``level`` outside (0, 1).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    tail = (1 - level) / 2 * 100
    return np.percentile(np.asarray(replicates, dtype=float), [tail, 100 - tail], axis=0)


def binary_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """ROC AUC of 0/1 ``labels`` by ``scores``: :func:`dermlab.metrics.definitions.binary_auc` as a float.

    Raises:
        ValueError: the labels hold one class only (no AUC is defined).
    """
    value = float(definitions.binary_auc(np.asarray(labels).astype(int), scores)[0])
    if np.isnan(value):
        raise ValueError("the AUC needs both classes among the labels")
    return value


def auc_interval(labels: ArrayLike, scores: ArrayLike, n_boot: int = 2000, seed: int = 0, level: float = 0.95
                 ) -> Interval:
    """Binary ROC AUC (labels 0/1, scores = P(positive)) with its stratified bootstrap interval
    (:func:`stratified_bootstrap` of :func:`binary_auc`; its errors)."""
    return stratified_bootstrap(binary_auc, labels, scores, n_boot, seed, level)


def every_metric_interval(labels: ArrayLike, probabilities: ArrayLike, class_names: Sequence[str],
                          n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict[str, Interval]:
    """Every metric a classifier's test logs (:data:`dermlab.metrics.definitions.BINARY` for two classes, with
    P(class 1) the score; the multi-class ones and ``recall_<class>`` / ``auc_<class>`` otherwise), each on the
    whole set with its stratified bootstrap percentile interval. All metrics share one set of resamples
    (:func:`stratified_resamples` of the labels with ``seed``), so the AUC's interval equals
    :func:`auc_interval`'s and the subgroup table's ``all`` row, to the last digit.

    Args:
        labels: (N,) class indices 0..C−1.
        probabilities: (N, C).
        class_names: the C names.
        n_boot: bootstrap replicates (≥ 1).
        seed: seed of the resampling.
        level: coverage of the intervals, in (0, 1).

    Returns:
        Each metric's name mapped to its Interval; a metric undefined on the set (e.g. the recall of an absent
        class) is left out.
    """
    labels, probabilities = np.asarray(labels).astype(int), np.asarray(probabilities, dtype=float)
    if probabilities.shape[1] == 2:
        values = lambda counts: definitions.binary_metric_values(labels, probabilities[:, 1], counts)  # noqa: E731
    else:
        values = lambda counts: definitions.multiclass_metric_values(labels, probabilities, class_names,  # noqa: E731
                                                                     counts)
    rows = stratified_resamples(labels, n_boot, seed)
    chunk = max(1, 2_000_000 // len(labels))  # replicates per call: bounded memory for large test sets
    parts = [values(resample_counts(rows[first:first + chunk], len(labels))) for first in range(0, n_boot, chunk)]
    whole = values(None)
    intervals = {}
    for name, estimate in whole.items():
        if np.isnan(estimate[0]):
            continue
        low, high = percentile_interval(np.concatenate([part[name] for part in parts]), level)
        intervals[name] = Interval(float(estimate[0]), float(low), float(high), level, n_boot)
    return intervals
