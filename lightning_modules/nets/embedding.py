"""Embedding classifier and the minority/majority triplets of the ``isic2018`` paper (002) §3 (task 3).

:class:`EmbeddingClassifier`: backbone features after the last pooling layer → FC to a d-dimensional embedding
f(x) (paper: 256) → FC to the classes. :func:`minority_triplets` draws the paper's triplets from a batch
(Eq. 3): the anchor and the positive from the same *minority* class, the negative from the *majority* class
(NV) — the hardest one, i.e. the majority image closest to the anchor (online hardest-negative mining).
pytorch-metric-learning's batch-hard miners pick negatives from every other class, which is not this rule;
its triplet loss is used on the triplets chosen here (:mod:`lightning_modules.triplet`).
"""

from __future__ import annotations

import torch
from torch import nn
from typing_extensions import override


class EmbeddingClassifier(nn.Module):
    """``features`` (a timm model built with ``num_classes=0``) → Linear(d) = f(x) → Linear(classes)."""

    def __init__(self, features: nn.Module, num_classes: int, embed_dim: int = 256):
        super().__init__()
        self.features = features
        self.embedding = nn.Linear(features.num_features, embed_dim)
        self.classifier = nn.Linear(embed_dim, num_classes)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """f(x), (B, d): the backbone's pooled features through the embedding FC (before any normalisation)."""
        return self.embedding(self.features(images))

    @override
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(images))

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature maps (timm's interface, so CAMs work as for any classifier)."""
        return self.features.forward_features(images)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes) from :meth:`forward_features`' maps: the backbone's pooling, f(x), the classifier."""
        return self.classifier(self.embedding(self.features.forward_head(features)))


def minority_triplets(embeddings: torch.Tensor, labels: torch.Tensor, majority: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(anchors, positives, negatives) indices into the batch: every ordered pair (a, p), a ≠ p, of one minority
    class, each with its hardest majority negative argmin_n ‖f(x_a) − f(x_n)‖². Empty when the batch lacks a
    minority pair or a majority image."""
    labels = labels.view(-1)
    minority = labels != majority
    majority_index = torch.nonzero(labels == majority).view(-1)
    same = (labels[:, None] == labels[None, :]) & minority[:, None] & minority[None, :]
    same.fill_diagonal_(False)
    anchors, positives = torch.nonzero(same, as_tuple=True)
    if not len(anchors) or not len(majority_index):
        empty = labels.new_zeros(0)
        return empty, empty, empty
    distances = torch.cdist(embeddings[anchors].detach().float(), embeddings[majority_index].detach().float()) ** 2
    return anchors, positives, majority_index[distances.argmin(1)]


def nearest_class_mean(embeddings: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """The paper's prediction rule: the class whose reference embeddings (C, R, d) are closest on average
    (mean Euclidean distance over its R samples); returns (N,) class indices."""
    classes, per_class, dim = references.shape
    distances = torch.cdist(embeddings.float(), references.reshape(classes * per_class, dim).float())
    return distances.view(-1, classes, per_class).mean(2).argmin(1)
