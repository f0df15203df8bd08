"""The one definition of every number the suite reports about class predictions.

A run's logged ``val/…`` and ``test/…`` metrics (:mod:`dermlab.metrics.logged`), ``dermlab score`` and its bootstrap
(:mod:`dermlab.challenge.scoring`, :mod:`dermlab.challenge.bootstrap`), the grid report's intervals
(:mod:`dermlab.grid.statistics`), the subgroup tables (:mod:`dermlab.stats.subgroups`) and the reliability diagram's ECE
(:mod:`dermlab.stats.calibration`) all call these functions; ``tests/fidelity/test_fidelity_one_definition.py`` checks
that every one of those paths gives the same digits on a split that lacks a class.

Every function takes ``counts`` (B, N): how often each of the N images is drawn in each of B bootstrap resamples
(``None``: the images themselves, B = 1) and returns (B,) values (per-class functions: (B, C)). A resample with
replacement is then a weighted sum over the **distinct scores** of the original set, sorted once, so a bootstrap of
thousands of resamples needs no sort per resample.

Binary tasks (labels 0/1, scores = P(positive)), as the ISIC challenges score each category
(``isic-challenge-scoring``):

* ``auc``: the Mann–Whitney statistic, positive–negative pairs tied in score counting ½ (Hanley & McNeil 1982,
  equal to the trapezoidal area under the ROC curve, scikit-learn's ``roc_auc_score``);
* ``accuracy``, ``sensitivity``, ``specificity`` at ``p > threshold`` (the scorer's strict convention);
* ``average_precision``: Σ over distinct-score thresholds (R_k − R_{k−1}) P_k (scikit-learn's
  ``average_precision_score``);
* ``pauc_tpr80``: the ISIC 2024 partial AUC above 80 % TPR
  (:func:`dermlab.challenge.partial_auc.partial_auc_from_counts`);
* ``ece``: expected calibration error of P(positive), 15 equal-width bins, L1 (Naeini et al. 2015; Guo et al.
  2017, Eq. 3), bin m holding m/15 ≤ p < (m+1)/15 and p = 1 a bin of its own (torchmetrics' bucketing).

Multi-class tasks (labels 0 … C−1, (N, C) probabilities). The predicted class is the argmax; a row whose highest
probability is shared by several classes is **undecided**, a prediction of no class (``isic-challenge-scoring``'s
rule: wrong for every class): it misses its own class (recall, accuracy, the ECE's outcome) and is a negative for
every other class (specificity). A class **absent** from the evaluated images has no recall and no ROC curve and is
left out of every macro mean (the official scorer's NaN-skipping mean), never counted as 0:

* ``accuracy``: the share of images whose argmax is their label;
* ``balanced_accuracy``: the mean over the classes present of the recall of the argmax (ISIC 2018's balanced
  multi-class accuracy, scikit-learn's ``balanced_accuracy_score``; the ``patch`` paper's MC-sensitivity);
* ``auc``: the macro one-vs-rest AUC, the mean over the classes present (and not all of the images) of the binary
  AUC of (label == c) by P(c);
* ``specificity``: the mean over the same classes of the one-vs-rest specificity of the argmax;
* ``recall_<class>``, ``auc_<class>``: per class, NaN for a class absent;
* ``ece``: the top-label ECE (Guo et al. 2017, Eq. 3): confidence max_c p_c, outcome "the argmax is right" (an
  undecided row is wrong), the bins above.

Undefined values are NaN: an AUC or partial AUC without both classes, a sensitivity or average precision without a
positive image. A binary specificity without a negative image is 1.0, as the official scorer's
``binary_specificity`` makes it ("a freebie").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from dermlab.challenge.partial_auc import partial_auc_from_counts

ECE_BINS = 15  #: equal-width confidence bins of the expected calibration error (Guo et al. 2017, §2)
THRESHOLD = 0.5  #: P(positive) above which a binary prediction is positive (``p > 0.5``, the ISIC scorer)
#: The names of the binary metrics, as :func:`binary_metric_values` returns them.
BINARY = ("auc", "accuracy", "sensitivity", "specificity", "average_precision", "pauc_tpr80", "ece")
#: The names of the multi-class metrics (besides ``recall_<class>``, ``auc_<class>``).
MULTICLASS = ("balanced_accuracy", "accuracy", "auc", "specificity", "ece")


def _weights(counts: ArrayLike | None, n: int) -> np.ndarray:
    """(B, N) float multiplicities; ``None`` → the images themselves (1, N)."""
    if counts is None:
        return np.ones((1, n))
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    if counts.ndim != 2 or counts.shape[1] != n:
        raise ValueError(f"counts must be (B, {n}) multiplicities of the {n} images, got shape {counts.shape}")
    return counts


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """The ratio numerator / denominator, NaN where the denominator is 0 (a metric with nothing to count)."""
    return np.divide(numerator, denominator, out=np.full(np.broadcast(numerator, denominator).shape, np.nan),
                     where=denominator > 0)


def _check_binary(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    if labels.ndim != 1 or scores.shape != labels.shape or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"need (N,) 0/1 labels and (N,) scores, got shapes {labels.shape} and {scores.shape}")
    return labels.astype(bool), scores


def score_level_counts(positive: np.ndarray, scores: np.ndarray, counts: ArrayLike | None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct scores ascending (L,), drawn positives (B, L), drawn negatives (B, L)): per distinct score, how
    many positive and negative images each resample holds there. ``positive`` (N,) bool, ``scores`` (N,),
    ``counts`` (B, N) or None. The scores are sorted once, whatever the number of resamples."""
    weights = _weights(counts, len(scores))
    values, group = np.unique(scores, return_inverse=True)
    order = np.argsort(group, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(group[order]) > 0])
    pos = np.add.reduceat((weights * positive)[:, order], starts, axis=1)
    neg = np.add.reduceat((weights * ~positive)[:, order], starts, axis=1)
    return values, pos, neg


def auc_from_level_counts(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """(B,) Mann–Whitney AUC from :func:`score_level_counts`: each positive beats the negatives below its score and
    ties half of those at it (Hanley & McNeil 1982); NaN for a resample without both classes."""
    neg_below = np.cumsum(neg, 1) - neg
    return _ratio((pos * (neg_below + neg / 2)).sum(1), pos.sum(1) * neg.sum(1))


def binary_auc(labels: ArrayLike, scores: ArrayLike, counts: ArrayLike | None = None) -> np.ndarray:
    """(B,) ROC AUC of 0/1 ``labels`` (N,) by ``scores`` (N,); NaN without both classes."""
    positive, scores = _check_binary(labels, scores)
    _, pos, neg = score_level_counts(positive, scores, counts)
    return auc_from_level_counts(pos, neg)


def binary_sensitivity(labels: ArrayLike, scores: ArrayLike, counts: ArrayLike | None = None,
                       threshold: float = THRESHOLD) -> np.ndarray:
    """(B,) share of the positive images with ``p > threshold``; NaN without a positive image."""
    positive, scores = _check_binary(labels, scores)
    weights = _weights(counts, len(scores))
    return _ratio((weights * (positive & (scores > threshold))).sum(1), (weights * positive).sum(1))


def binary_accuracy(labels: ArrayLike, scores: ArrayLike, counts: ArrayLike | None = None,
                    threshold: float = THRESHOLD) -> np.ndarray:
    """(B,) share of the images predicted right at ``p > threshold``."""
    positive, scores = _check_binary(labels, scores)
    weights = _weights(counts, len(scores))
    return (weights * ((scores > threshold) == positive)).sum(1) / weights.sum(1)


def binary_specificity(labels: ArrayLike, scores: ArrayLike, counts: ArrayLike | None = None,
                       threshold: float = THRESHOLD) -> np.ndarray:
    """(B,) share of the negative images with ``p ≤ threshold``; 1.0 without a negative image (the scorer's
    freebie)."""
    positive, scores = _check_binary(labels, scores)
    weights = _weights(counts, len(scores))
    negatives = (weights * ~positive).sum(1)
    return np.where(negatives > 0, _ratio((weights * (~positive & (scores <= threshold))).sum(1), negatives), 1.0)


def binary_ece(labels: ArrayLike, scores: ArrayLike, counts: ArrayLike | None = None,
               n_bins: int = ECE_BINS) -> np.ndarray:
    """(B,) ECE of P(positive): the sum over bins of the absolute difference between the bin's Σ p and Σ y,
    divided by N (module docstring)."""
    positive, scores = _check_binary(labels, scores)
    return _ece(scores, positive.astype(float), _weights(counts, len(scores)), n_bins)


def _ece(confidence: np.ndarray, outcome: np.ndarray, weights: np.ndarray, n_bins: int) -> np.ndarray:
    bins = confidence_bins(confidence, n_bins)
    gap = confidence - outcome
    per_bin = np.stack([(weights[:, bins == k] * gap[bins == k]).sum(1) for k in range(n_bins + 1)], 1)
    return np.abs(per_bin).sum(1) / weights.sum(1)


def confidence_bins(confidence: ArrayLike, n_bins: int = ECE_BINS) -> np.ndarray:
    """Bin index 0 … ``n_bins`` of each confidence: m/n_bins ≤ c < (m+1)/n_bins, c = 1 → ``n_bins`` (its own bin).
    The edges are float64 ``linspace(0, 1, n_bins + 1)``, the bucketing of torchmetrics' calibration error."""
    edges = np.linspace(0, 1, n_bins + 1)
    return np.searchsorted(edges, np.asarray(confidence, dtype=float), side="right") - 1


def binary_metric_values(labels: ArrayLike, scores: ArrayLike, counts: ArrayLike | None = None,
                         threshold: float = THRESHOLD) -> dict[str, np.ndarray]:
    """Every binary metric (:data:`BINARY`) of one scored test set, (B,) each.

    Args:
        labels: (N,) 0/1 truth.
        scores: (N,) P(positive) in [0, 1].
        counts: (B, N) multiplicity of each image in each of B resamples; None: the images themselves.
        threshold: ``p > threshold`` is a positive prediction.

    Raises:
        ValueError: labels not 0/1, or shapes that do not match.
    """
    positive, scores = _check_binary(labels, scores)
    weights = _weights(counts, len(scores))
    positives, negatives = (weights * positive).sum(1), (weights * ~positive).sum(1)
    _, pos, neg = score_level_counts(positive, scores, weights)
    # AP: at the threshold of distinct score g, the images at or above it are predicted positive.
    pos_at_or_above = np.cumsum(pos[:, ::-1], 1)[:, ::-1]
    all_at_or_above = pos_at_or_above + np.cumsum(neg[:, ::-1], 1)[:, ::-1]
    precision = np.divide(pos_at_or_above, all_at_or_above, out=np.zeros_like(pos), where=all_at_or_above > 0)
    both = (positives > 0) & (negatives > 0)
    pauc = np.full(len(weights), np.nan)
    if both.any():
        pauc[both] = partial_auc_from_counts(pos[both], neg[both], 0.8)
    return {
        "auc": auc_from_level_counts(pos, neg),
        "accuracy": binary_accuracy(positive, scores, weights, threshold),
        "sensitivity": binary_sensitivity(positive, scores, weights, threshold),
        "specificity": binary_specificity(positive, scores, weights, threshold),
        "average_precision": _ratio((pos * precision).sum(1), positives),
        "pauc_tpr80": pauc,
        "ece": _ece(scores, positive.astype(float), weights, ECE_BINS),
    }


# --- multi-class --------------------------------------------------------------------------------------------------
def _check_multiclass(labels: ArrayLike, probabilities: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    labels, probabilities = np.asarray(labels), np.asarray(probabilities, dtype=float)
    if probabilities.ndim != 2 or labels.shape != probabilities.shape[:1]:
        raise ValueError(f"need (N,) labels and (N, C) probabilities, got {labels.shape} and {probabilities.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= probabilities.shape[1]):
        raise ValueError(f"labels must lie in 0 … {probabilities.shape[1] - 1}")
    return labels.astype(int), probabilities


def decided_argmax(probabilities: ArrayLike) -> np.ndarray:
    """(N,) the argmax of each (N, C) row, −1 where the highest probability is shared (undecided: no class)."""
    probabilities = np.asarray(probabilities, dtype=float)
    peak = probabilities.max(1, keepdims=True)
    return np.where((probabilities == peak).sum(1) == 1, probabilities.argmax(1), -1)


def multiclass_accuracy(labels: ArrayLike, probabilities: ArrayLike, counts: ArrayLike | None = None) -> np.ndarray:
    """(B,) share of the images whose argmax is their label (undecided rows wrong)."""
    labels, probabilities = _check_multiclass(labels, probabilities)
    weights = _weights(counts, len(labels))
    return (weights * (decided_argmax(probabilities) == labels)).sum(1) / weights.sum(1)


def class_recall(labels: ArrayLike, probabilities: ArrayLike, counts: ArrayLike | None = None) -> np.ndarray:
    """(B, C) recall of the argmax per class (undecided rows wrong); NaN for a class without an image."""
    labels, probabilities = _check_multiclass(labels, probabilities)
    weights = _weights(counts, len(labels))
    right = decided_argmax(probabilities) == labels
    classes = range(probabilities.shape[1])
    return np.stack([_ratio((weights[:, labels == c] * right[labels == c]).sum(1), weights[:, labels == c].sum(1))
                     for c in classes], 1)


def class_specificity(labels: ArrayLike, probabilities: ArrayLike, counts: ArrayLike | None = None) -> np.ndarray:
    """(B, C) one-vs-rest specificity of the argmax per class: of the images of other classes, the share not
    predicted c. NaN for a class without an image (it is then left out of the macro mean) or without negatives."""
    labels, probabilities = _check_multiclass(labels, probabilities)
    weights = _weights(counts, len(labels))
    predicted = decided_argmax(probabilities)
    columns = []
    for c in range(probabilities.shape[1]):
        other = labels != c
        value = _ratio((weights[:, other] * (predicted[other] != c)).sum(1), weights[:, other].sum(1))
        columns.append(np.where(weights[:, labels == c].sum(1) > 0, value, np.nan))
    return np.stack(columns, 1)


def class_auc(labels: ArrayLike, probabilities: ArrayLike, counts: ArrayLike | None = None) -> np.ndarray:
    """(B, C) one-vs-rest AUC of (label == c) by P(c); NaN for a class absent or holding every image."""
    labels, probabilities = _check_multiclass(labels, probabilities)
    return np.stack([binary_auc(labels == c, probabilities[:, c], counts)
                     for c in range(probabilities.shape[1])], 1)


def macro(per_class: np.ndarray) -> np.ndarray:
    """(B,) mean over the classes that have a value (NaN = absent, left out); NaN where none has."""
    defined = ~np.isnan(per_class)
    return _ratio(np.where(defined, per_class, 0).sum(1), defined.sum(1).astype(float))


def balanced_accuracy(labels: ArrayLike, probabilities: ArrayLike, counts: ArrayLike | None = None) -> np.ndarray:
    """(B,) balanced multi-class accuracy: mean recall over the classes present (module docstring)."""
    return macro(class_recall(labels, probabilities, counts))


def macro_auc(labels: ArrayLike, probabilities: ArrayLike, counts: ArrayLike | None = None) -> np.ndarray:
    """(B,) macro one-vs-rest AUC over the classes present (and not all of the images)."""
    return macro(class_auc(labels, probabilities, counts))


def macro_specificity(labels: ArrayLike, probabilities: ArrayLike, counts: ArrayLike | None = None) -> np.ndarray:
    """(B,) mean one-vs-rest specificity of the argmax over the classes present."""
    return macro(class_specificity(labels, probabilities, counts))


def top_label_ece(labels: ArrayLike, probabilities: ArrayLike, counts: ArrayLike | None = None,
                  n_bins: int = ECE_BINS) -> np.ndarray:
    """(B,) top-label ECE: confidence max_c p_c, outcome whether the argmax is the label (Guo et al. 2017); an
    undecided row (:func:`decided_argmax`) is wrong."""
    labels, probabilities = _check_multiclass(labels, probabilities)
    right = (decided_argmax(probabilities) == labels).astype(float)
    return _ece(probabilities.max(1), right, _weights(counts, len(labels)), n_bins)


def multiclass_metric_values(labels: ArrayLike, probabilities: ArrayLike, class_names: Sequence[str] | None = None,
                             counts: ArrayLike | None = None) -> dict[str, np.ndarray]:
    """Every multi-class metric (:data:`MULTICLASS`) and, given ``class_names``, ``recall_<name>`` and
    ``auc_<name>`` per class, (B,) each. ``labels`` (N,) in 0 … C−1, ``probabilities`` (N, C)."""
    recall, auc = class_recall(labels, probabilities, counts), class_auc(labels, probabilities, counts)
    values = {"balanced_accuracy": macro(recall), "accuracy": multiclass_accuracy(labels, probabilities, counts),
              "auc": macro(auc),
              "specificity": macro_specificity(labels, probabilities, counts),
              "ece": top_label_ece(labels, probabilities, counts)}
    for c, name in enumerate(class_names or ()):
        values[f"recall_{name}"], values[f"auc_{name}"] = recall[:, c], auc[:, c]
    return values


def accuracy(labels: ArrayLike, probabilities: ArrayLike, counts: ArrayLike | None = None,
             threshold: float = THRESHOLD) -> np.ndarray:
    """(B,) ``accuracy`` of (N, C) probabilities: at ``p > threshold`` of P(class 1) for C = 2, of the argmax
    otherwise."""
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.shape[1] == 2:
        return binary_accuracy(labels, probabilities[:, 1], counts, threshold)
    return multiclass_accuracy(labels, probabilities, counts)


def auc(labels: ArrayLike, probabilities: ArrayLike, counts: ArrayLike | None = None) -> np.ndarray:
    """(B,) ``auc`` of (N, C) probabilities: the binary AUC of P(class 1) for C = 2, the macro AUC otherwise."""
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.shape[1] == 2:
        return binary_auc(labels, probabilities[:, 1], counts)
    return macro_auc(labels, probabilities, counts)
