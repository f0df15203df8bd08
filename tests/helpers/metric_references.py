"""Reference values of the binary metrics from well-kept libraries (torchmetrics' own classes, scikit-learn), which
the suite's single definitions (:mod:`dermlab.metrics.definitions`) must reproduce. Used by tests only: the suite
itself computes every number by its one definition."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryAveragePrecision,
    BinaryCalibrationError,
    BinaryRecall,
    BinarySpecificity,
)


def challenge_pauc(labels, scores, min_tpr: float = 0.8) -> float:
    """ISIC 2024 host's formula: scikit-learn's McClish-standardised pAUC of the flipped problem, un-standardised."""
    max_fpr = 1 - min_tpr
    standardised = roc_auc_score(1 - np.asarray(labels), 1 - np.asarray(scores), max_fpr=max_fpr)
    return 0.5 * max_fpr**2 + (max_fpr - 0.5 * max_fpr**2) * 2 * (standardised - 0.5)


def reference_binary_metrics(labels, scores) -> dict[str, float]:
    """AUC, accuracy / sensitivity / specificity at p > 0.5, AP, pAUC above TPR 0.8 and ECE (15 bins, L1)."""
    collection = MetricCollection({
        "auc": BinaryAUROC(), "accuracy": BinaryAccuracy(), "sensitivity": BinaryRecall(),
        "specificity": BinarySpecificity(), "average_precision": BinaryAveragePrecision(),
        "ece": BinaryCalibrationError(n_bins=15, norm="l1"),
    })
    collection.update(torch.tensor(np.asarray(scores, dtype=float)), torch.tensor(np.asarray(labels), dtype=torch.long))
    values = {name: float(value) for name, value in collection.compute().items()}
    values["pauc_tpr80"] = challenge_pauc(labels, scores)
    return values
