"""From a network's outputs to one (B, C) probability per image: the views and crops fused, test-time augmentation
and temperature scaling — the one definition the LightningModules evaluate with and an exported package predicts
with (:class:`~lightning_modules.nets.package.Predictor`). Free of Lightning.

* views (``views``): softmax of each view's logits, averaged over the V views of a (B, V, C, H, W) batch (the
  ``arl`` paper's 9 test patches); a (B, C, H, W) batch is one view;
* crops (``crops``, the ``patch`` paper §II-E): the N_C crops' logits averaged then softmax (``crop_fusion:
  logits``, the authors' code) or their softmax outputs averaged (``probabilities``);
* then, optionally, the mean over the 8 elements of D4 (:func:`dermlab.imaging.tta.dihedral_mean`) and
  softmax(log p / T) (:func:`dermlab.stats.calibration.tempered`, Guo et al. 2017 §4.2).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch

from dermlab.imaging.tta import dihedral_mean
from dermlab.stats.calibration import tempered

#: How a network's per-view or per-crop outputs become one prediction per image.
Fusion = Literal["views", "crops"]
#: What the ``crops`` fusion averages.
CropFusion = Literal["logits", "probabilities"]
Network = Callable[[torch.Tensor], torch.Tensor]


def view_probabilities(net: Network, images: torch.Tensor) -> torch.Tensor:
    """(B, C) class probabilities of (B, C, H, W) images, or of (B, V, C, H, W) views averaged per image.

    Args:
        net: maps (N, C, H, W) images to (N, K) logits.
        images: one view per image, or V views of each.
    """
    if images.ndim == 5:
        views = net(images.flatten(0, 1)).float().softmax(1)
        return views.view(images.shape[0], images.shape[1], -1).mean(1)
    return net(images).float().softmax(1)


def crop_log_probabilities(net: Network, crops: torch.Tensor, crop_fusion: CropFusion = "logits") -> torch.Tensor:
    """(N_B, K) log-probabilities of the fused prediction of (N_B, N_C, C, H, W) crops (or (N_B, C, H, W) images).

    Args:
        net: maps crops to logits (N_B, N_C, K) (:class:`~lightning_modules.nets.patch_attention.CropNet`).
        crops: the ordered crops of each image.
        crop_fusion: ``logits``: log softmax of the mean logit; ``probabilities``: log of the mean softmax output.
    """
    logits = net(crops).float()  # (N_B, N_C, K)
    if crop_fusion == "logits":
        return logits.mean(1).log_softmax(-1)
    per_crop = logits.log_softmax(-1)
    return per_crop.logsumexp(1) - math.log(per_crop.shape[1])


def fused_probabilities(net: Network, images: torch.Tensor, fusion: Fusion = "views",
                        crop_fusion: CropFusion = "logits") -> torch.Tensor:
    """(B, K) probabilities of a batch by ``fusion`` (:func:`view_probabilities` or the exp of
    :func:`crop_log_probabilities`)."""
    if fusion == "crops":
        return crop_log_probabilities(net, images, crop_fusion).exp()
    return view_probabilities(net, images)


def evaluated_probabilities(probabilities: Network, images: torch.Tensor, dihedral: bool = False,
                            temperature: torch.Tensor | float | None = None) -> torch.Tensor:
    """(B, K) probabilities as evaluation sees them: ``probabilities(images)``, averaged over D4 when ``dihedral``,
    then temperature-scaled by ``temperature`` (None: not scaled).

    Raises:
        ValueError: ``dihedral`` on non-square images, or a temperature ≤ 0.
    """
    fused = dihedral_mean(probabilities, images) if dihedral else probabilities(images)
    return fused if temperature is None else tempered(fused, temperature)
