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

Here it is computed directly (NumPy, no scikit-learn), on one score vector or on a batch of bootstrap replicates
at once.
"""

from __future__ import annotations

import numpy as np


def partial_auc_above_tpr(labels, scores, min_tpr: float = 0.8):
    """Area under the ROC curve where TPR ≥ ``min_tpr``, in raw units (0 … 1 − ``min_tpr``), as the ISIC 2024 scorer.

    Args:
        labels: (N,) 0/1 truth (1 = malignant), both classes present.
        scores: (N,) scores, higher = more malignant; or (B, N), B score vectors for the same labels (bootstrap
            replicates laid out in the labels' order).
        min_tpr: the lower edge of the TPR band, in [0, 1); 0 gives the full ROC AUC.

    Returns:
        A float for (N,) scores, a (B,) float array for (B, N). Ties between a positive and a negative count ½ (the
        staircase's diagonal step), as in scikit-learn's ``roc_curve``.

    Raises:
        ValueError: labels not 0/1 or of one class, shapes that do not match, ``min_tpr`` outside [0, 1).
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=float)
    if labels.ndim != 1 or scores.shape[-1:] != labels.shape or scores.ndim not in (1, 2):
        raise ValueError(f"need (N,) labels and (N,) or (B, N) scores, got shapes {labels.shape} and {scores.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0/1")
    if not 0 <= min_tpr < 1:
        raise ValueError(f"min_tpr must lie in [0, 1), got {min_tpr}")
    malignant = labels.astype(bool)
    positives, negatives = int(malignant.sum()), int((~malignant).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("the partial AUC needs both classes among the labels")
    batch = np.atleast_2d(scores)
    max_fpr = 1 - min_tpr
    # Flipped problem: benign is the positive class and a lower malignancy score ranks first. Walk the images
    # from the lowest score up; FPR' counts malignant images passed, TPR' benign ones.
    order = np.argsort(batch, axis=1, kind="stable")
    ranked = np.take_along_axis(batch, order, axis=1)
    is_malignant = malignant[order]
    fpr = np.cumsum(is_malignant, axis=1) / positives
    tpr = np.cumsum(~is_malignant, axis=1) / negatives
    # Tied scores form one step: give every image of a tie group the point reached at the group's end.
    last_of_group = np.ones_like(ranked, dtype=bool)
    last_of_group[:, :-1] = ranked[:, 1:] != ranked[:, :-1]
    columns = np.arange(ranked.shape[1])
    group_end = np.minimum.accumulate(np.where(last_of_group, columns, ranked.shape[1])[:, ::-1], axis=1)[:, ::-1]
    fpr, tpr = np.take_along_axis(fpr, group_end, axis=1), np.take_along_axis(tpr, group_end, axis=1)
    zeros = np.zeros((len(batch), 1))
    x0, x1 = np.hstack([zeros, fpr[:, :-1]]), fpr
    y0, y1 = np.hstack([zeros, tpr[:, :-1]]), tpr
    # Trapezoids clipped at x = max_fpr (the interpolated end point).
    right = np.minimum(x1, max_fpr)
    width = np.clip(right - x0, 0, None)
    slope = np.divide(y1 - y0, x1 - x0, out=np.zeros_like(y0), where=x1 > x0)
    area = (width * (2 * y0 + slope * width) / 2).sum(axis=1)
    return float(area[0]) if scores.ndim == 1 else area
