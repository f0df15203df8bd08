"""The ISIC 2024 (SLICE-3D) challenge metric: partial ROC AUC above a minimum true-positive rate.

Definition (ISIC 2024 Kaggle challenge "Skin Cancer Detection with 3D-TBP", primary metric, N. Kurtansky, MSKCC,
repository ``ISIC-Research/Challenge-2024-Metrics``, ``PrimaryMetric-pAUC.py``): the area under the ROC curve in
the band TPR ≥ ``min_tpr`` (default 0.80), in raw units, so it ranges from 0 (no image ranked right) to
1 − ``min_tpr`` (0.2, a perfect ranking). The scorer gets it by flipping labels (1 − y) and scores (1 − p): the
flipped problem's FPR is the original's 1 − TPR, so the band TPR ≥ min_tpr becomes FPR' ≤ max_fpr = 1 − min_tpr,
and it takes the area under the flipped ROC staircase up to FPR' = max_fpr, adding one point at max_fpr by linear
interpolation. The Kaggle host's scoring code gets the same number from scikit-learn's McClish-standardised
``roc_auc_score(1 − y, 1 − p, max_fpr=max_fpr)`` by undoing the standardisation:
pAUC = ½ max_fpr² + (max_fpr − ½ max_fpr²) · 2 · (standardised − ½).

Here it is computed directly (NumPy, no scikit-learn), from the counts of each class at each distinct score, so a
bootstrap can score thousands of resamples (given as multiplicities) without sorting each one.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def partial_auc_above_tpr(labels: ArrayLike, scores: ArrayLike, min_tpr: float = 0.8) -> float:
    """Area under the ROC curve where TPR ≥ ``min_tpr``, in raw units (0 … 1 − ``min_tpr``), as the ISIC 2024 scorer.

    Args:
        labels: (N,) 0/1 truth (1 = malignant), both classes present.
        scores: (N,) scores, higher = more malignant.
        min_tpr: the lower edge of the TPR band, in [0, 1); 0 gives the full ROC AUC.

    Returns:
        The area. Ties between a positive and a negative are the staircase's diagonal step (they count ½), as in
        scikit-learn's ``roc_curve``.

    Raises:
        ValueError: labels not 0/1 or of one class, lengths that differ, ``min_tpr`` outside [0, 1).
    """
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    if labels.ndim != 1 or scores.shape != labels.shape:
        raise ValueError(f"need (N,) labels and (N,) scores, got shapes {labels.shape} and {scores.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0/1")
    _, group = np.unique(scores, return_inverse=True)  # distinct scores, ascending
    malignant = np.bincount(group, weights=labels == 1)
    benign = np.bincount(group, weights=labels == 0)
    return float(partial_auc_from_counts(malignant, benign, min_tpr))


def partial_auc_from_counts(malignant: ArrayLike, benign: ArrayLike, min_tpr: float = 0.8
                            ) -> np.ndarray | float:
    """:func:`partial_auc_above_tpr` from how many malignant and benign images hold each distinct score.

    Args:
        malignant: (..., G) counts (or bootstrap multiplicities) of the malignant images at each of G distinct
            scores, in ascending score order; each row must hold at least one.
        benign: (..., G) the same for the benign images, same shape; each row must hold at least one.
        min_tpr: the lower edge of the TPR band, in [0, 1).

    Returns:
        (...) areas, one per row; one ``np.float64`` for counts of shape (G,).

    Raises:
        ValueError: ``min_tpr`` outside [0, 1), shapes that differ, or a row without one of the classes.
    """
    malignant, benign = np.asarray(malignant, dtype=float), np.asarray(benign, dtype=float)
    if malignant.shape != benign.shape or malignant.ndim == 0:
        raise ValueError(f"need counts of one shape (..., G), got {malignant.shape} and {benign.shape}")
    if not 0 <= min_tpr < 1:
        raise ValueError(f"min_tpr must lie in [0, 1), got {min_tpr}")
    positives, negatives = malignant.sum(-1, keepdims=True), benign.sum(-1, keepdims=True)
    if (positives == 0).any() or (negatives == 0).any():
        raise ValueError("the partial AUC needs both classes among the labels")
    max_fpr = 1 - min_tpr
    # Flipped problem: benign is the positive class and a lower malignancy score ranks first. Walking the distinct
    # scores upwards, FPR' counts the malignant images passed, TPR' the benign ones; one point per distinct score
    # (a tie of both classes is one diagonal step).
    x1 = np.cumsum(malignant, -1) / positives
    # Only the distinct scores up to FPR' = max_fpr matter (in every row): leave out the rest.
    needed = min(int((x1 < max_fpr).sum(-1).max()) + 1, x1.shape[-1])
    x1, y1 = x1[..., :needed], np.cumsum(benign[..., :needed], -1) / negatives
    zero = np.zeros_like(x1[..., :1])
    x0, y0 = np.concatenate([zero, x1[..., :-1]], -1), np.concatenate([zero, y1[..., :-1]], -1)
    # Trapezoids clipped at FPR' = max_fpr (the challenge's interpolated end point).
    width = np.clip(np.minimum(x1, max_fpr) - x0, 0, None)
    slope = np.divide(y1 - y0, x1 - x0, out=np.zeros_like(y0), where=x1 > x0)
    return (width * (2 * y0 + slope * width) / 2).sum(-1)
