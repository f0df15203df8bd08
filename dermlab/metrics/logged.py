"""The metrics a run logs: a torchmetrics collection whose scalars come from :mod:`dermlab.metrics.definitions`.

Every number that is also computed elsewhere (``dermlab score``, the grid report, the subgroup tables, the
reliability diagram) is computed by its one definition in :mod:`dermlab.metrics.definitions`:
:class:`DefinedMetrics` keeps the epoch's probabilities and targets as torchmetrics states (gathered across DDP
ranks when computed, like torchmetrics' own AUROC) and hands them to those functions.

Binary tasks (two classes) are scored on the probability of the positive class, like the ISIC challenges: AUC,
accuracy / sensitivity / specificity at threshold 0.5 (``p > 0.5``), average precision, the ISIC 2024 partial AUC
above TPR 0.8 (``pauc_tpr80``) and the expected calibration error of P(positive) (``ece``: 15 equal-width bins, L1;
Naeini et al. 2015, Guo et al. 2017 Eq. 3). Multi-class tasks report accuracy, balanced accuracy (mean recall over
the classes present, the ISIC 2018 "balanced multi-class accuracy" and the MC-sensitivity of the ``patch`` paper), macro
specificity and macro AUC (over the classes present), the top-label ECE, recall and AUC per class, and — logged by
runs only, from torchmetrics — macro and support-weighted F1 and macro precision (the ``weighting``
paper's mPR).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryConfusionMatrix,
    BinaryROC,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassROC,
)
from torchmetrics.utilities.data import dim_zero_cat

from dermlab.metrics.definitions import binary_metric_values, multiclass_metric_values


class DefinedMetrics(Metric):
    """The scalars of :mod:`dermlab.metrics.definitions` for one task, as one torchmetrics metric.

    Fed like torchmetrics' classification metrics: P(positive) (N,) and 0/1 targets for two classes, (N, C)
    probabilities and class indices otherwise. ``compute`` returns ``{name: 0-d float64 tensor}``
    (:data:`~dermlab.metrics.definitions.BINARY`, or :data:`~dermlab.metrics.definitions.MULTICLASS` plus
    ``recall_<class>`` / ``auc_<class>``); a metric the epoch's images cannot define is NaN. ``keep`` limits the
    result to those names (and their per-class ``<name>_<class>``), ``prefix`` goes before every name.
    """

    full_state_update = False

    def __init__(self, class_names: Sequence[str], keep: Sequence[str] | None = None, prefix: str = "",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.class_names = [str(name) for name in class_names]
        self.keep, self.prefix = tuple(keep) if keep is not None else None, prefix
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, scores: torch.Tensor, target: torch.Tensor) -> None:
        """Keep a batch: P(positive) (N,) for two classes, else (N, C) probabilities; (N,) class indices."""
        self.scores.append(scores.detach().double())
        self.target.append(target.detach().long())

    def compute(self) -> dict[str, torch.Tensor]:
        """The epoch's metrics over every kept batch (all ranks): ``{prefix + name: 0-d float64 tensor}`` on the
        metric's device, NaN where the images cannot define one."""
        scores, target = (dim_zero_cat(s).cpu().numpy() for s in (self.scores, self.target))
        if len(self.class_names) == 2:
            values = binary_metric_values(target, scores)
        else:
            values = multiclass_metric_values(target, scores, self.class_names)
        if self.keep is not None:  # e.g. ("accuracy", "recall"): those and recall_<class>
            values = {name: v for name, v in values.items()
                      if name in self.keep or any(name.startswith(f"{k}_") for k in self.keep)}
        return {f"{self.prefix}{name}": torch.tensor(float(v[0]), dtype=torch.float64, device=self.device)
                for name, v in values.items()}


def binary_metrics() -> MetricCollection:
    """Scalar metrics of one binary category, fed with P(positive) and 0/1 targets."""
    return MetricCollection({"defined": DefinedMetrics(("negative", "positive"))})


def multiclass_metrics(class_names: Sequence[str]) -> MetricCollection:
    """Scalar metrics of a softmax over ``class_names``, fed with (N, C) probabilities."""
    n = len(class_names)
    return MetricCollection({
        "defined": DefinedMetrics(class_names),
        "f1": MulticlassF1Score(num_classes=n, average="macro"),
        "f1_weighted": MulticlassF1Score(num_classes=n, average="weighted"),
        "precision": MulticlassPrecision(num_classes=n, average="macro"),
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
