"""``lightning_modules/triplet.py``: the triplet loss, the triplet epochs and the nearest-class-mean metrics."""

from __future__ import annotations

import pytest
import torch

from datamodules.taxonomies import TAXONOMIES, mapping_between
from tests.helpers.cross_dataset import HAM
from tests.helpers.isic2018_classes import MEL, NV


def test_triplet_loss_on_a_hand_example():
    """Eq. 4 with squared distances, α = 1: anchor 0, positive 1, negative 2 → (1 + 1 − 4)₊ = 0;
    anchor 0, positive 3, negative 2 → (9 + 1 − 4)₊ = 6; mean over the two triplets = 3 (sum = 6)."""
    from lightning_modules.triplet import TripletClassifier

    module = TripletClassifier(backbone="test_resnet", num_classes=7, class_names=("MEL", "NV", "BCC", "AKIEC",
                                                                                   "BKL", "DF", "VASC"), margin=1.0)
    embeddings = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    labels = torch.tensor([MEL, MEL, NV, MEL])
    triplets = (torch.tensor([0, 0]), torch.tensor([1, 3]), torch.tensor([2, 2]))
    assert module.triplet_loss(embeddings, labels, indices_tuple=triplets).item() == pytest.approx(3.0)
    module_sum = TripletClassifier(backbone="test_resnet", num_classes=7, class_names=module.class_names, margin=1.0,
                                   triplet_reduction="sum")
    assert module_sum.triplet_loss(embeddings, labels, indices_tuple=triplets).item() == pytest.approx(6.0)


def test_triplet_epochs_follow_triplet_every():
    from lightning_modules.triplet import TripletClassifier

    names = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
    module = TripletClassifier(backbone="test_resnet", num_classes=7, class_names=names, triplet_every=10)
    epochs = []
    for epoch in range(30):
        module.trainer = type("T", (), {"current_epoch": epoch})()
        if module.triplet_epoch():
            epochs.append(epoch)
    assert epochs == [9, 19, 29]
    with pytest.raises(ValueError, match="majority_class"):
        TripletClassifier(backbone="test_resnet", num_classes=7, class_names=names, majority_class="XX")


def test_the_triplet_classifier_keeps_its_nearest_class_mean_metrics_off_a_mapped_test_split():
    """The nearest-class-mean rule picks a training class, which the evaluation classes need not contain: on a
    mapped test split only the softmax metrics are logged (validation keeps both)."""
    from lightning_modules import TripletClassifier

    module = TripletClassifier(backbone="test_resnet", num_classes=7, class_names=HAM)
    module.use_test_mapping(mapping_between(HAM, TAXONOMIES["isic2017_three_class"]))
    names = module.logged_metric_names()
    assert "val/ncm_balanced_accuracy" in names and "test/ncm_balanced_accuracy" not in names
    assert "test/recall_seborrheic_keratosis" in names and module.ncm_skipped("test")
