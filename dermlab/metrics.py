"""Every metric of the suite, built from torchmetrics, shared by training and ``dermlab score``.

Binary tasks (two classes) are scored on the probability of the positive class, like the ISIC
challenges: AUC, accuracy / sensitivity / specificity at threshold 0.5 (``p > 0.5``, the
convention of ``isic-challenge-scoring``), average precision, the ISIC 2024 partial AUC above
TPR 0.8 (``pauc_tpr80``, :mod:`dermlab.partial_auc`) and the expected calibration error of
P(positive) (``ece``: 15 equal-width bins, L1; Naeini et al. 2015, Guo et al. 2017 Eq. 3).
Multi-class tasks report balanced accuracy (mean per-class recall, the ISIC 2018 "balanced
multi-class accuracy" and the MC-sensitivity of the ``patch`` paper), macro specificity,
macro and support-weighted F1, macro precision (the ``weighting`` paper's mPR), macro AUC, accuracy,
the top-label expected calibration error (``ece``, 15 bins), and recall and AUC per class.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryAveragePrecision,
    BinaryCalibrationError,
    BinaryConfusionMatrix,
    BinaryRecall,
    BinaryROC,
    BinarySpecificity,
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassCalibrationError,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
    MulticlassROC,
    MulticlassSpecificity,
)
from torchmetrics.utilities.data import dim_zero_cat
from torchmetrics.wrappers import ClasswiseWrapper

ECE_BINS = 15  # equal-width confidence bins of the expected calibration error (Guo et al. 2017, Sec. 2)


class PartialAUCAboveTPR(BinaryAUROC):
    """ISIC 2024 challenge metric: ROC area above TPR ``min_tpr`` in raw units (0 … 1 − ``min_tpr``).

    Fed like :class:`~torchmetrics.classification.BinaryAUROC` with P(positive) and 0/1 targets. As the challenge's
    scorer, it flips targets and scores, takes the McClish-standardised partial AUC up to FPR = 1 − ``min_tpr``
    (torchmetrics' ``max_fpr``, the same as scikit-learn's) and undoes the standardisation:
    ½ m² + (m − ½ m²) · 2 · (standardised − ½), m = 1 − ``min_tpr``. The plain NumPy function and the source are in
    :mod:`dermlab.partial_auc` (the two agree to 1e-7: torchmetrics holds m as a float32 scalar).
    """

    def __init__(self, min_tpr: float = 0.8, **kwargs) -> None:
        if not 0 <= min_tpr < 1:
            raise ValueError(f"min_tpr must lie in [0, 1), got {min_tpr}")
        if kwargs.get("ignore_index") is not None or kwargs.get("thresholds") is not None:
            raise ValueError("PartialAUCAboveTPR keeps every score (thresholds=None) and no ignore_index")
        super().__init__(max_fpr=float(1 - min_tpr), **kwargs)

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        super().update(1 - preds, 1 - target)

    def compute(self) -> torch.Tensor:
        """The partial AUC; 0 when the targets hold one class (as BinaryAUROC, which then warns)."""
        standardised, m = super().compute(), self.max_fpr
        target = dim_zero_cat(self.target)
        if target.numel() == 0 or bool((target == target[0]).all()):
            return torch.zeros_like(standardised)
        return 0.5 * m**2 + (m - 0.5 * m**2) * 2 * (standardised - 0.5)


class PresentClassMacroAUROC(MulticlassAUROC):
    """Macro one-vs-rest AUC over the classes the targets hold, as :func:`dermlab.scoring.score` averages (the
    official scorer's NaN-skipping pandas mean): a class without an image in the evaluated split has no ROC curve and
    is left out of the mean instead of counting as 0 (torchmetrics' ``average="macro"``, which would give
    7/8 × the score of a fold of ISIC 2019 that holds no AK image). NaN when no class holds an image.

    Fed like :class:`~torchmetrics.classification.MulticlassAUROC`: (N, C) probabilities, (N,) class indices.
    """

    def __init__(self, num_classes: int, **kwargs) -> None:
        if kwargs.get("thresholds") is not None or "average" in kwargs:
            raise ValueError("PresentClassMacroAUROC keeps every score (thresholds=None) and averages itself")
        super().__init__(num_classes=num_classes, average=None, **kwargs)

    def compute(self) -> torch.Tensor:
        per_class = super().compute()
        target = dim_zero_cat(self.target)
        present = torch.bincount(target[target >= 0].long(), minlength=self.num_classes)[: self.num_classes] > 0
        return per_class[present].mean() if bool(present.any()) else torch.tensor(float("nan"))


def binary_metrics(threshold: float = 0.5) -> MetricCollection:
    """Scalar metrics of one binary category, fed with P(positive) and 0/1 targets."""
    return MetricCollection({
        "auc": BinaryAUROC(),
        "accuracy": BinaryAccuracy(threshold=threshold),
        "sensitivity": BinaryRecall(threshold=threshold),
        "specificity": BinarySpecificity(threshold=threshold),
        "average_precision": BinaryAveragePrecision(),
        "pauc_tpr80": PartialAUCAboveTPR(min_tpr=0.8),
        "ece": BinaryCalibrationError(n_bins=ECE_BINS, norm="l1"),
    })


def multiclass_metrics(class_names: Sequence[str]) -> MetricCollection:
    """Scalar metrics of a softmax over ``class_names``, fed with (N, C) probabilities."""
    n = len(class_names)
    labels = [str(name) for name in class_names]
    return MetricCollection({
        "balanced_accuracy": MulticlassRecall(num_classes=n, average="macro"),
        "accuracy": MulticlassAccuracy(num_classes=n, average="micro"),
        "specificity": MulticlassSpecificity(num_classes=n, average="macro"),
        "f1": MulticlassF1Score(num_classes=n, average="macro"),
        "f1_weighted": MulticlassF1Score(num_classes=n, average="weighted"),
        "precision": MulticlassPrecision(num_classes=n, average="macro"),
        "auc": PresentClassMacroAUROC(num_classes=n),  # classes absent from the split left out, as dermlab score
        "ece": MulticlassCalibrationError(num_classes=n, n_bins=ECE_BINS, norm="l1"),
        "recall": ClasswiseWrapper(MulticlassRecall(num_classes=n, average=None), labels=labels, prefix="recall_"),
        "auc_per_class": ClasswiseWrapper(MulticlassAUROC(num_classes=n, average=None), labels=labels,
                                          prefix="auc_"),
    }, compute_groups=False)


def classification_metrics(class_names: Sequence[str]) -> MetricCollection:
    """The scalar metrics for a task with these classes (binary when there are two)."""
    return binary_metrics() if len(class_names) == 2 else multiclass_metrics(class_names)


def curve_metrics(num_classes: int) -> MetricCollection:
    """ROC curve and confusion matrix, kept apart because they are plotted, not logged as scalars."""
    if num_classes == 2:
        return MetricCollection({"roc": BinaryROC(), "confusion": BinaryConfusionMatrix()})
    return MetricCollection({"roc": MulticlassROC(num_classes=num_classes),
                             "confusion": MulticlassConfusionMatrix(num_classes=num_classes)})


def metric_input(probabilities: torch.Tensor) -> torch.Tensor:
    """What the metrics take: P(positive) for two classes, the full (N, C) matrix otherwise."""
    return probabilities[:, 1] if probabilities.shape[1] == 2 else probabilities


def scalars(values: dict) -> dict[str, float]:
    """Flatten computed metrics (ClasswiseWrapper already flattens) to plain floats."""
    return {name: float(value) for name, value in values.items()}


def metric_names(class_names: Sequence[str]) -> list[str]:
    """Names :func:`classification_metrics` produces for these classes (computed on a tiny fake batch)."""
    n = len(class_names)
    targets = torch.arange(2 * n) % n
    probabilities = torch.softmax(torch.randn(2 * n, n, generator=torch.Generator().manual_seed(0)), 1)
    collection = classification_metrics(class_names)
    collection.update(metric_input(probabilities), targets)
    return list(collection.compute())
