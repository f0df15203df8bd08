"""Every metric of the suite, built from torchmetrics, shared by training and ``dermlab score``.

Binary tasks (two classes) are scored on the probability of the positive class, like the ISIC
challenges: AUC, accuracy / sensitivity / specificity at threshold 0.5 (``p > 0.5``, the
convention of ``isic-challenge-scoring``) and average precision.
Multi-class tasks report balanced accuracy (mean per-class recall, the ISIC 2018 "balanced
multi-class accuracy" and the MC-sensitivity of the ``patch`` paper), macro specificity,
macro and support-weighted F1, macro precision (the ``weighting`` paper's mPR), macro AUC, accuracy,
and recall and AUC per class.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryAveragePrecision,
    BinaryConfusionMatrix,
    BinaryRecall,
    BinaryROC,
    BinarySpecificity,
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
    MulticlassROC,
    MulticlassSpecificity,
)
from torchmetrics.wrappers import ClasswiseWrapper


def binary_metrics(threshold: float = 0.5) -> MetricCollection:
    """Scalar metrics of one binary category, fed with P(positive) and 0/1 targets."""
    return MetricCollection({
        "auc": BinaryAUROC(),
        "accuracy": BinaryAccuracy(threshold=threshold),
        "sensitivity": BinaryRecall(threshold=threshold),
        "specificity": BinarySpecificity(threshold=threshold),
        "average_precision": BinaryAveragePrecision(),
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
        "auc": MulticlassAUROC(num_classes=n, average="macro"),
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
