"""``lightning_modules/nets/embedding.py``: isic2018 task 3's minority/majority triplets and nearest-class-mean
prediction."""

from __future__ import annotations

import torch

from lightning_modules.nets.embedding import minority_triplets, nearest_class_mean
from tests.helpers.isic2018_classes import BCC, DF, MEL, NV


# --- task 3: triplets, loss, nearest class mean ---------------------------------------------------------------
def test_triplets_obey_the_minority_majority_roles_and_take_the_hardest_negative():
    labels = torch.tensor([NV, MEL, MEL, BCC, BCC, NV, DF, NV])
    embeddings = torch.tensor([[5.0, 0], [0, 0], [1, 0], [0, 3], [0, 4], [2, 0], [9, 9], [0, 6]])
    anchors, positives, negatives = minority_triplets(embeddings, labels, NV)
    pairs = {(int(a), int(p)) for a, p in zip(anchors, positives, strict=True)}
    assert pairs == {(1, 2), (2, 1), (3, 4), (4, 3)}  # ordered same-class minority pairs; DF has no partner
    assert all(labels[n] == NV for n in negatives)
    nv = torch.nonzero(labels == NV).view(-1)
    for a, n in zip(anchors, negatives, strict=True):
        distances = ((embeddings[nv] - embeddings[a]) ** 2).sum(1)
        assert n == nv[distances.argmin()]  # the closest NV image
    assert {int(a): int(n) for a, n in zip(anchors, negatives, strict=True)} == {1: 5, 2: 5, 3: 7, 4: 7}
    none = minority_triplets(embeddings[:1], labels[:1], NV)
    assert all(len(t) == 0 for t in none)


def test_nearest_class_mean_on_a_toy_embedding():
    """Class 0's references sit at 0 and 4 (mean distance from 1: (1 + 3)/2 = 2), class 1's at 2.5 and 2.5
    (from 1: 1.5): 1 goes to class 1 although class 0 has the nearest single sample."""
    references = torch.tensor([[[0.0], [4.0]], [[2.5], [2.5]]])
    assert nearest_class_mean(torch.tensor([[1.0], [-1.0], [3.0]]), references).tolist() == [1, 0, 1]
