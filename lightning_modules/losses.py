"""Per-sample losses and class weights for imbalanced training sets, shared by every method of the suite.

Losses (``weighting`` paper §3–3.1): ``ce`` −log p_y (Eq. 5) and ``focal`` −(1 − p_y)^γ log p_y (Eq. 6).
Class weights:

* ``inverse`` — n_c = (N / N_c)^k, the ``patch`` paper's loss weighting (§II-F; k = 1 baseline, Table VI
  sweeps k ∈ {0.5, 0.75, 1, 1.25, 1.5}); with k = 1 it is the ``weighting`` paper's class-balanced (CB)
  weight w = N / N_y (§3.2).
* ``effective_number`` — w = (1 − β) / (1 − β^{N_y}) with β = (N − 1) / N, the ``weighting`` paper's
  effective-samples (ES) weight (Cui et al. 2019).

``normalise`` chooses the scale (the relative weights, which are what the papers define, are the same):

* ``none`` — the weights as the equations print them (``weighting`` Eq. 7–8, ``patch`` §II-F). Raw CB weights
  average C per training sample (Σ_c (N_c/N)(N/N_c) = C), raw ES weights about C/N (ES ≈ CB / N for
  β = (N − 1)/N), so under SGD CB takes C× larger and ES about N/C× smaller steps than unweighted CE.
* ``sum_to_classes`` — scaled to sum to the number of classes C (Cui et al. 2019's convention; equal counts,
  or k = 0, give all ones). On the HAM10000 counts a training sample then weighs about 0.22 on average
  (CB and ES alike), so SGD steps are about 4.5× smaller than unweighted CE's.

The loss is then the batch mean of w_{y_i} · CE_i (times any per-sample weight, and in training a curriculum's 0/1
selection, :class:`SampleSelection`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import torch
from torch import nn

#: The class weight scheme (``inverse`` or ``effective_number``, see above).
ClassWeighting = Literal["inverse", "effective_number"]
#: The scale of the class weights (``none`` or ``sum_to_classes``, see above).
ClassWeightNormalise = Literal["none", "sum_to_classes"]


class SampleSelection(Protocol):
    """What the loss asks a curriculum for in training (:class:`callbacks.curriculum.Curriculum`: SPL / OHEM,
    ``weighting`` §3.3), which the callback sets as the module's ``curriculum`` for the fit."""

    def select(self, losses: torch.Tensor, labels: torch.Tensor, module: nn.Module | None = None) -> torch.Tensor:
        """0/1 weights (B,) for a training batch's per-sample ``losses`` (B,) (detached) and ``labels`` (B,);
        ``module`` is the LightningModule asking."""
        ...


def class_weights(counts: torch.Tensor | Sequence[int], scheme: ClassWeighting = "inverse", power: float = 1.0,
                  normalise: ClassWeightNormalise = "sum_to_classes") -> torch.Tensor:
    """Per-class loss weights (C,) from training counts (C,), raw (``normalise="none"``) or summing to C.

    A class without training images gets weight 0 (no sample carries it); with ``sum_to_classes`` the others
    are normalised to sum to their own number, so a tiny set that misses a class still trains.

    Raises:
        ValueError: no training images, or an unknown ``scheme`` / ``normalise``.
    """
    counts = torch.as_tensor(counts, dtype=torch.float64)
    present = counts > 0
    if not present.any():
        raise ValueError("no training images: class weights need the training counts")
    total = counts.sum()
    safe = counts.clamp_min(1)
    if scheme == "inverse":
        weights = (total / safe) ** power
    elif scheme == "effective_number":
        beta = (total - 1) / total
        weights = (1 - beta) / (1 - beta ** safe)
    else:
        raise ValueError(f"unknown class weighting {scheme!r}; use inverse or effective_number")
    weights = torch.where(present, weights, torch.zeros_like(weights))
    if normalise == "none":
        return weights.float()
    if normalise == "sum_to_classes":
        return (weights * present.sum() / weights.sum()).float()
    raise ValueError(f"unknown class-weight normalisation {normalise!r}; use none or sum_to_classes")


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """Per-sample focal loss −(1 − p_y)^γ log p_y (Lin et al. 2017; ``weighting`` paper Eq. 6), multi-class.

    γ = 0 is the cross-entropy (Eq. 5); the paper found γ = 1 best in almost all of its experiments.
    """
    log_p = logits.float().log_softmax(-1).gather(-1, target[..., None]).squeeze(-1)
    return -((1 - log_p.exp()).clamp_min(0) ** gamma) * log_p


def per_sample_loss(logits: torch.Tensor, target: torch.Tensor, loss: str = "ce", gamma: float = 1.0) -> torch.Tensor:
    """The suite's classification loss per sample: ``ce`` (Eq. 5) or ``focal`` (Eq. 6)."""
    if loss == "ce":
        return torch.nn.functional.cross_entropy(logits.float(), target, reduction="none")
    if loss == "focal":
        return focal_loss(logits, target, gamma)
    raise ValueError(f"unknown loss {loss!r}; use ce or focal")
