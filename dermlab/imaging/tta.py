"""Test-time augmentation over the dihedral group D4: the 8 flips / transposes of a square image.

The SIIM-ISIC Melanoma Classification 2020 winners (Ha, Liu & Liu, "Identifying Melanoma Images using
EfficientNet Ensemble: Winning Solution to the SIIM-ISIC Melanoma Classification Challenge", 2020) average each
model's predictions over these 8 orientations at test time; a dermoscopy image has no canonical orientation, so
every element of D4 shows a plausible lesion.

The transforms act on the last two dimensions (H, W), so they apply alike to (B, C, H, W) images and to
(B, V, C, H, W) multi-view batches (every view of an image gets the same transform).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: The 8 elements of D4, in the order :func:`dihedral_views` returns them.
DIHEDRAL = ("identity", "hflip", "vflip", "rot180", "transpose", "transpose_hflip", "transpose_vflip",
            "anti_transpose")


def dihedral_transform(images: torch.Tensor, index: int) -> torch.Tensor:
    """Element ``index`` (0–7, see :data:`DIHEDRAL`) of D4 applied to ``images`` (..., H, W).

    0–3: identity, horizontal flip (W reversed), vertical flip (H reversed), both (a 180° rotation);
    4–7: the same four after swapping H and W (transpose; transpose then h-flip is a 90° rotation, etc.).

    Raises:
        ValueError: ``index`` outside 0–7, or a transposing element on a non-square image (H != W would change
            the network's input shape).
    """
    if not 0 <= index < 8:
        raise ValueError(f"D4 has 8 elements (0-7), got index {index}")
    if index >= 4:
        if images.shape[-1] != images.shape[-2]:
            raise ValueError(f"dihedral TTA transposes images, so they must be square; got H x W = "
                             f"{images.shape[-2]} x {images.shape[-1]} (use a square eval crop, or tta: none)")
        images = images.transpose(-2, -1)
    flips = ((), (-1,), (-2,), (-2, -1))[index % 4]
    return images.flip(flips) if flips else images


def dihedral_views(images: torch.Tensor) -> list[torch.Tensor]:
    """The 8 transformed copies of ``images`` (..., H, W), in :data:`DIHEDRAL` order."""
    return [dihedral_transform(images, index) for index in range(8)]


def dihedral_mean(predict: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """(1/8) Σ_g predict(g(images)) over the 8 elements g of D4.

    Args:
        predict: maps a batch (B, ..., H, W) to per-image predictions (B, C), e.g. softmax probabilities.
        images: (B, C, H, W) or (B, V, C, H, W), square.

    Returns:
        (B, C) mean prediction. One forward pass per element (8 passes of batch B, so memory stays that of a
        plain evaluation batch).
    """
    total = None
    for view in dihedral_views(images):
        prediction = predict(view)
        total = prediction if total is None else total + prediction
    return total / 8
