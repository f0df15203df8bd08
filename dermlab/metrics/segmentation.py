"""Per-image lesion-segmentation scores of the ISIC 2018 task 1 challenge, as a torchmetrics Metric.

Each image's confusion counts are gathered in a torchmetrics ``Metric`` (synced across DDP ranks); from them,
per image: accuracy, sensitivity, specificity, Jaccard, Dice and the challenge metric, the
**thresholded Jaccard** (an image's Jaccard below 0.65 counts as 0; ``isic2018`` paper 002 §1). The scores
are averaged over images, as ``isic-challenge-scoring`` does, with its conventions where a ratio is 0/0
(sensitivity without lesion pixels, specificity without background, Jaccard and Dice with neither lesion
nor prediction: 1).
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric

#: The per-image scores, in the order they are reported.
SCORES = ("threshold_jaccard", "jaccard", "dice", "accuracy", "sensitivity", "specificity")
CHALLENGE_THRESHOLD = 0.65


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """The ratio numerator / denominator, and 1 where the denominator is 0 (the official scorer's "freebie")."""
    safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return torch.where(denominator > 0, numerator / safe, torch.ones_like(numerator))


def scores_from_counts(tp: torch.Tensor, fp: torch.Tensor, tn: torch.Tensor, fn: torch.Tensor,
                       threshold: float = CHALLENGE_THRESHOLD) -> dict[str, torch.Tensor]:
    """Per-image scores (:data:`SCORES`) from per-image confusion counts of pixels (float, any shape, the four
    alike), each of that shape; ``threshold`` is the thresholded Jaccard's cut (0.65, the challenge's)."""
    jaccard = _ratio(tp, tp + fp + fn)
    return {
        "threshold_jaccard": torch.where(jaccard >= threshold, jaccard, torch.zeros_like(jaccard)),
        "jaccard": jaccard,
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "accuracy": (tp + tn) / (tp + tn + fp + fn),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
    }


def confusion_counts(probabilities: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """(N, 4) counts tp, fp, tn, fn per image (and per channel: (N·K, 4) for (N, K, H, W) inputs).

    Counted directly: torchmetrics' ``binary_stat_scores(multidim_average="samplewise")`` squeezes a batch of
    one image to a scalar and fails, and the last batch of an evaluation often holds one image.
    """
    predicted = (probabilities > threshold).flatten(start_dim=probabilities.ndim - 2).flatten(0, -2)
    truth = (masks > 0.5).flatten(start_dim=masks.ndim - 2).flatten(0, -2)
    return torch.stack([(predicted & truth).sum(1), (predicted & ~truth).sum(1), (~predicted & ~truth).sum(1),
                        (~predicted & truth).sum(1)], 1).double()


def attribute_jaccard(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ISIC 2018 task 2 (``isic-challenge-scoring``'s task 2 scorer): each image's counts divided by its pixel
    count (image sizes vary), summed over images; from these sums the Jaccard per attribute and, over all
    attributes together, the challenge's overall ("micro-averaged") Jaccard. (N, K, 4) counts → ((K,), ()).
    """
    normalised = counts / counts.sum(-1, keepdim=True)
    per_attribute = normalised.sum(0)
    jaccard = lambda c: _ratio(c[..., 0], c[..., 0] + c[..., 1] + c[..., 3])  # noqa: E731
    return jaccard(per_attribute), jaccard(per_attribute.sum(0))


class SegmentationScores(Metric):
    """Mean per-image scores (:data:`SCORES`) of (N, K, H, W) probability maps against 0/1 masks.

    With K > 1 (task 2's attributes) it also gives the task 2 challenge metric, ``attribute_jaccard`` (Jaccard
    over all attributes' normalised pixel counts), and ``jaccard_<class name>`` per attribute
    (:func:`attribute_jaccard`).
    """

    full_state_update = False

    def __init__(self, class_names: tuple[str, ...] = ("lesion",), threshold: float = 0.5, **kwargs: Any):
        super().__init__(**kwargs)
        self.class_names, self.threshold = tuple(class_names), threshold
        self.add_state("counts", default=[], dist_reduce_fx="cat")

    def update(self, probabilities: torch.Tensor, masks: torch.Tensor) -> None:
        """Add a batch: (N, K, H, W) probabilities (> ``threshold`` is lesion) and masks (> 0.5 is lesion).

        Raises:
            ValueError: shapes that differ or are not (N, K, H, W).
        """
        if probabilities.shape != masks.shape or probabilities.ndim != 4:
            raise ValueError(f"need (N, K, H, W) probabilities and masks of one shape, got {tuple(probabilities.shape)}"
                             f" and {tuple(masks.shape)}")
        self.counts.append(confusion_counts(probabilities.float(), masks, self.threshold))

    def compute(self) -> dict[str, torch.Tensor]:
        """{score: 0-d tensor}: each of :data:`SCORES` averaged over images (and attributes), plus, for K > 1,
        ``attribute_jaccard`` and ``jaccard_<class name>``."""
        counts = self.counts if isinstance(self.counts, torch.Tensor) else torch.cat(self.counts)
        counts = counts.view(-1, len(self.class_names), 4)
        per_image = scores_from_counts(*counts.unbind(-1))
        result = {name: values.mean() for name, values in per_image.items()}
        if len(self.class_names) > 1:
            per_attribute, overall = attribute_jaccard(counts)
            result["attribute_jaccard"] = overall
            result.update({f"jaccard_{c}": v for c, v in zip(self.class_names, per_attribute, strict=True)})
        return result

    def metric_names(self) -> list[str]:
        """The names :meth:`compute` returns, without computing (known before any batch)."""
        names = list(SCORES)
        if len(self.class_names) > 1:
            names += ["attribute_jaccard", *(f"jaccard_{c}" for c in self.class_names)]
        return names
