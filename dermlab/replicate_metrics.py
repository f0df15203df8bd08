"""The binary metrics of :func:`dermlab.metrics.binary_metrics` on many bootstrap resamples at once, in NumPy.

A bootstrap of ``dermlab score`` recomputes every metric on thousands of resamples; torchmetrics in that loop would
take minutes. A resample with replacement is the test set with a multiplicity for each image (0, 1, 2, …), so
every metric here is a weighted sum over the **distinct scores** of the original set, sorted once: no resample is
sorted again. Definitions (the same as the torchmetrics metrics, checked against them in
``tests/test_score_bootstrap.py``):

* ``auc``: the Mann–Whitney statistic, positive–negative pairs with ties counting ½ (Hanley & McNeil 1982);
* ``accuracy``, ``sensitivity``, ``specificity`` at ``p > threshold`` (the ISIC scorer's strict convention);
* ``average_precision``: Σ over distinct-score thresholds (R_k − R_{k−1}) P_k, as scikit-learn's
  ``average_precision_score`` and torchmetrics' ``BinaryAveragePrecision``;
* ``pauc_tpr80``: :func:`dermlab.partial_auc.partial_auc_from_counts` (ISIC 2024);
* ``ece``: 15 equal-width bins, L1, bins as torchmetrics' ``BinaryCalibrationError`` (``bucketize(right=True)``
  on ``linspace(0, 1, 16)``, so p = 1 has a bin of its own).
"""

from __future__ import annotations

import numpy as np
import torch

from dermlab.metrics import ECE_BINS
from dermlab.partial_auc import partial_auc_from_counts


def ece_bins(scores, n_bins: int = ECE_BINS) -> np.ndarray:
    """Bin index (0 … ``n_bins``) of each score, exactly as torchmetrics' calibration error bins it."""
    scores = torch.from_numpy(np.array(scores, dtype=float))  # a copy: the caller's array may be read-only
    boundaries = torch.linspace(0, 1, n_bins + 1, dtype=scores.dtype)
    return (torch.bucketize(scores, boundaries, right=True) - 1).numpy()


def score_level_counts(positive: np.ndarray, scores: np.ndarray, counts: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct scores ascending (L,), drawn positives (B, L), drawn negatives (B, L)): per distinct score, how
    many positive and negative images each of the B resamples holds there (``counts`` (B, N) multiplicities,
    ``positive`` (N,) bool). The scores are sorted once, whatever the number of resamples."""
    values, group = np.unique(scores, return_inverse=True)
    order = np.argsort(group, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(group[order]) > 0])
    pos = np.add.reduceat((counts * positive)[:, order], starts, axis=1)
    neg = np.add.reduceat((counts * ~positive)[:, order], starts, axis=1)
    return values, pos, neg


def auc_from_level_counts(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """(B,) Mann–Whitney AUC from :func:`score_level_counts`: each positive beats the negatives below its score and
    ties half of those at it (Hanley & McNeil 1982; as :func:`dermlab.intervals.binary_auc`)."""
    neg_below = np.cumsum(neg, 1) - neg
    return (pos * (neg_below + neg / 2)).sum(1) / (pos.sum(1) * neg.sum(1))


def binary_metrics_resampled(labels, scores, counts, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """Every metric of :func:`dermlab.metrics.binary_metrics` on each resample of one scored test set.

    Args:
        labels: (N,) 0/1 truth.
        scores: (N,) P(positive) in [0, 1].
        counts: (B, N) multiplicity of each image in each of B resamples (all ones: the test set itself); every
            resample must hold both classes (a stratified bootstrap keeps the class counts).
        threshold: decision threshold (``p > threshold`` is positive).

    Returns:
        ``{name: (B,) values}`` under the names :func:`dermlab.metrics.binary_metrics` uses.

    Raises:
        ValueError: labels not 0/1, shapes that do not match, or a resample without one of the classes.
    """
    y, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    if y.ndim != 1 or scores.shape != y.shape or counts.shape[1:] != y.shape or not np.isin(y, (0, 1)).all():
        raise ValueError(f"need (N,) 0/1 labels, (N,) scores and (B, N) counts, got shapes {y.shape}, "
                         f"{scores.shape} and {counts.shape}")
    y = y.astype(bool)
    positives, negatives, n = (counts * y).sum(1), (counts * ~y).sum(1), counts.sum(1)
    if (positives == 0).any() or (negatives == 0).any():
        raise ValueError("the metrics need both classes in every resample")
    # Per distinct score, ascending: how many positive and negative images (with multiplicity) hold it.
    values, pos, neg = score_level_counts(y, scores, counts)
    auc = auc_from_level_counts(pos, neg)
    # AP: at the threshold of distinct score g, the images at or above it are predicted positive.
    pos_at_or_above = np.cumsum(pos[:, ::-1], 1)[:, ::-1]
    all_at_or_above = pos_at_or_above + np.cumsum(neg[:, ::-1], 1)[:, ::-1]
    precision = np.divide(pos_at_or_above, all_at_or_above, out=np.zeros_like(pos), where=all_at_or_above > 0)
    average_precision = (pos * precision).sum(1) / positives  # a score no resampled image holds adds 0
    above = values > threshold
    tp, tn = pos[:, above].sum(1), neg[:, ~above].sum(1)
    # ECE: per bin |Σ p − Σ y| over the images in it, summed over bins, over N.
    gap_per_image = scores - y
    bins = ece_bins(scores)
    gaps = np.stack([(counts[:, bins == k] * gap_per_image[bins == k]).sum(1) for k in range(ECE_BINS + 1)], 1)
    return {
        "auc": auc,
        "accuracy": (tp + tn) / n,
        "sensitivity": tp / positives,
        "specificity": tn / negatives,
        "average_precision": average_precision,
        "pauc_tpr80": partial_auc_from_counts(pos, neg, 0.8),
        "ece": np.abs(gaps).sum(1) / n,
    }
