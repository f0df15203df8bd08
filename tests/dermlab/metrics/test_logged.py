"""Metric definitions checked by hand on tiny inputs."""

from __future__ import annotations

import pytest
import torch

from dermlab.metrics.logged import binary_metrics, multiclass_metrics, scalars


def test_binary_metrics_by_hand():
    # p = [0.9, 0.6, 0.4, 0.2, 0.7], y = [1, 0, 1, 0, 0]; threshold 0.5 predicts [1, 1, 0, 0, 1]
    # TP=1 FN=1 TN=1 FP=2 → sens 1/2, spec 1/3, acc 2/5.
    # AUC: positive scores {0.9, 0.4} vs negatives {0.6, 0.2, 0.7}: wins 3 + 1 = 4 of 6 pairs.
    # AP: ranking 0.9(+) 0.7 0.6 0.4(+) 0.2 → precision at each positive 1/1 and 2/4 → (1 + 0.5)/2.
    metrics = binary_metrics()
    metrics.update(torch.tensor([0.9, 0.6, 0.4, 0.2, 0.7]), torch.tensor([1, 0, 1, 0, 0]))
    values = scalars(metrics.compute())
    assert values["sensitivity"] == pytest.approx(1 / 2)
    assert values["specificity"] == pytest.approx(1 / 3)
    assert values["accuracy"] == pytest.approx(2 / 5)
    assert values["auc"] == pytest.approx(4 / 6)
    assert values["average_precision"] == pytest.approx(0.75)


def test_threshold_is_strict_like_the_isic_scorer():
    metrics = binary_metrics()
    metrics.update(torch.tensor([0.5]), torch.tensor([1]))
    assert scalars(metrics.compute())["sensitivity"] == 0.0  # 0.5 is not > 0.5


def test_multiclass_metrics_by_hand():
    # truth [0, 0, 1, 2], argmax prediction [0, 1, 1, 0]
    probabilities = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.5, 0.2, 0.3]])
    metrics = multiclass_metrics(["nv", "mel", "sk"])
    metrics.update(probabilities, torch.tensor([0, 0, 1, 2]))
    values = scalars(metrics.compute())
    # recall per class: nv 1/2, mel 1/1, sk 0/1 → balanced accuracy 1/2
    assert values["recall_nv"] == pytest.approx(0.5)
    assert values["recall_mel"] == pytest.approx(1.0)
    assert values["recall_sk"] == pytest.approx(0.0)
    assert values["balanced_accuracy"] == pytest.approx(0.5)
    assert values["accuracy"] == pytest.approx(0.5)
    # specificity per class: nv TN/(TN+FP) = 1/2, mel 2/3, sk 3/3 → mean 13/18
    assert values["specificity"] == pytest.approx(13 / 18)
    assert {"auc", "f1", "auc_nv", "auc_mel", "auc_sk"} <= set(values)


def test_macro_auc_leaves_out_a_class_without_images_as_dermlab_score_does():
    """A split without any image of a class (a fold of ISIC 2019 without AK): that class's AUC is undefined and is
    left out of the macro mean, as in ``dermlab score`` (the official scorer's NaN-skipping mean), not counted as 0.
    By hand: class 0 positives {0.7, 0.6} vs negatives {0.4, 0.2} → 1; class 1 positives {0.5, 0.7} vs {0.2, 0.3}
    → 1; class 2 has no image → macro AUC 1 (torchmetrics' average="macro" gave 2/3)."""
    probabilities = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    metrics = multiclass_metrics(["a", "b", "c"])
    metrics.update(probabilities, torch.tensor([0, 1, 0, 1]))
    assert scalars(metrics.compute())["auc"] == pytest.approx(1.0)
    metrics = multiclass_metrics(["a", "b", "c"])  # every class present: the plain macro mean
    metrics.update(probabilities[:3].roll(1, dims=1), torch.tensor([0, 1, 2]))
    values = scalars(metrics.compute())
    assert values["auc"] == pytest.approx((values["auc_a"] + values["auc_b"] + values["auc_c"]) / 3)


def test_binary_ece_by_hand():
    # 10 images all with P(positive) = 0.8, 6 of them positive: one bin, |0.6 − 0.8| × 10/10 = 0.2
    metrics = binary_metrics()
    metrics.update(torch.full((10,), 0.8), torch.tensor([1] * 6 + [0] * 4))
    assert scalars(metrics.compute())["ece"] == pytest.approx(0.2)
    # p = [0.1, 0.1, 0.9, 0.9, 0.9], y = [0, 1, 1, 1, 0]; 15 bins of width 1/15:
    # bin [1/15, 2/15): mean p 0.1, positive share 1/2 → |0.5 − 0.1| × 2/5 = 0.16
    # bin [13/15, 14/15): mean p 0.9, positive share 2/3 → |2/3 − 0.9| × 3/5 = 0.14;  ECE = 0.30
    metrics = binary_metrics()
    metrics.update(torch.tensor([0.1, 0.1, 0.9, 0.9, 0.9]), torch.tensor([0, 1, 1, 1, 0]))
    assert scalars(metrics.compute())["ece"] == pytest.approx(0.30)


def test_multiclass_ece_is_top_label_by_hand():
    # five rows whose top probability is 0.8; the argmax is right on 3 of 5 → |0.6 − 0.8| = 0.2
    probabilities = torch.tensor([[0.8, 0.1, 0.1]] * 3 + [[0.1, 0.8, 0.1]] * 2)
    metrics = multiclass_metrics(["nv", "mel", "sk"])
    metrics.update(probabilities, torch.tensor([0, 0, 0, 0, 2]))
    assert scalars(metrics.compute())["ece"] == pytest.approx(0.2)


def test_metric_names_hold_the_new_metrics():
    from dermlab.metrics.logged import metric_names

    assert {"auc", "average_precision", "pauc_tpr80", "ece"} <= set(metric_names(["benign", "malignant"]))
    assert "ece" in metric_names(["nv", "mel", "sk"]) and "pauc_tpr80" not in metric_names(["nv", "mel", "sk"])
