"""Ordered crops, ``patch`` paper §II-D: fixed crop positions spread evenly over the unresized image.

"During evaluation, we use ordered cropping where each patch location is fixed at a predefined point
in the image ... N_C ∈ {5, 9, 16} where 5 covers the four corners and the center and 9 and 16 are
evenly distributed over the image with overlap between patches." Ordered-Crop uses the same positions
in training. For N_C = k² the top-left corners are ``round(linspace(0, H − s, k))`` × ``round(linspace(0,
W − s, k))``: on a 600×450 HAM10000 image with 224 crops the 9 centres lie at rows {112, 225, 338} ×
columns {112, 300, 488}. N_C = 5 is the four corners and the centre.

The crops are cut from the image tensor after the (full-size) pipeline, so one decode and one
augmentation serve all N_C crops, and a batch holds (N_B, N_C, C, s, s).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dermlab.errors import DataError


def ordered_crop_boxes(height: int, width: int, n_crops: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners (row, column) of ``n_crops`` ordered ``size``×``size`` crops, row by row."""
    if height < size or width < size:
        raise DataError(f"a {height}×{width} image is smaller than the {size} px crops; resize it first "
                        f"(e.g. a Resize step in the transforms) or use a smaller crop size.")
    last_row, last_col = height - size, width - size
    if n_crops == 1:
        return [(last_row // 2, last_col // 2)]
    if n_crops == 5:
        return [(0, 0), (0, last_col), (last_row // 2, last_col // 2), (last_row, 0), (last_row, last_col)]
    side = math.isqrt(n_crops)
    if side * side != n_crops:
        raise ValueError(f"ordered crops come as 1, 5 or a square grid (4, 9, 16, ...); got {n_crops}")
    rows = np.rint(np.linspace(0, last_row, side)).astype(int)
    cols = np.rint(np.linspace(0, last_col, side)).astype(int)
    return [(int(r), int(c)) for r in rows for c in cols]


def ordered_crops(image: torch.Tensor, n_crops: int, size: int) -> torch.Tensor:
    """(C, H, W) → (n_crops, C, size, size) at :func:`ordered_crop_boxes`."""
    boxes = ordered_crop_boxes(image.shape[-2], image.shape[-1], n_crops, size)
    return torch.stack([image[..., r:r + size, c:c + size] for r, c in boxes])
