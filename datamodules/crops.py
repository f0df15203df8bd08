"""Ordered crops, ``patch`` paper §II-D: fixed crop positions spread evenly over the unresized image.

"During evaluation, we use ordered cropping where each patch location is fixed at a predefined point
in the image ... N_C ∈ {5, 9, 16} where 5 covers the four corners and the center and 9 and 16 are
evenly distributed over the image with overlap between patches." Ordered-Crop uses the same positions
in training. For N_C = k² the top-left corners are ``round(linspace(0, H − s, k))`` × ``round(linspace(0,
W − s, k))``: on a 600×450 HAM10000 image with 224 crops the 9 centres lie at rows {112, 225, 338} ×
columns {112, 300, 488}. N_C = 5 is the four corners and the centre.

The crops are cut from the image tensor after the (full-size) pipeline, so one decode and one
augmentation serve all N_C crops, and a batch holds (N_B, N_C, C, s, s).

Multi-Crop training (§II-D: "we do not resize the images and randomly crop patches of the models' input size
from the image") takes N_C *random* positions instead (:func:`random_crop_boxes`), as the authors' code trains its
multi-crop models: one flip / colour change of the whole image, then N_C independent uniform crop positions.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dermlab.errors import DataError


def check_fits(height: int, width: int, size: int) -> None:
    """A DataError unless ``size``×``size`` crops fit in a ``height``×``width`` image."""
    if height < size or width < size:
        raise DataError(f"a {height}×{width} image is smaller than the {size} px crops; resize it first "
                        f"(e.g. a Resize step in the transforms) or use a smaller crop size.")


def ordered_crop_boxes(height: int, width: int, n_crops: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners (row, column) of ``n_crops`` ordered ``size``×``size`` crops, row by row."""
    check_fits(height, width, size)
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


def random_crop_boxes(height: int, width: int, n_crops: int, size: int, rng: np.random.Generator
                     ) -> list[tuple[int, int]]:
    """Top-left corners (row, column) of ``n_crops`` ``size``×``size`` crops at independent uniform positions
    (each of the (H − s + 1)·(W − s + 1) placements equally likely), drawn from ``rng``."""
    check_fits(height, width, size)
    rows = rng.integers(0, height - size + 1, n_crops)
    cols = rng.integers(0, width - size + 1, n_crops)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)]


def ordered_crops(image: torch.Tensor, n_crops: int, size: int) -> torch.Tensor:
    """(C, H, W) → (n_crops, C, size, size) at :func:`ordered_crop_boxes`."""
    boxes = ordered_crop_boxes(image.shape[-2], image.shape[-1], n_crops, size)
    return cut(image, boxes, size)


def random_crops(image: torch.Tensor, n_crops: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """(C, H, W) → (n_crops, C, size, size) at :func:`random_crop_boxes`."""
    return cut(image, random_crop_boxes(image.shape[-2], image.shape[-1], n_crops, size, rng), size)


def cut(image: torch.Tensor, boxes: list[tuple[int, int]], size: int) -> torch.Tensor:
    """(C, H, W) → (len(boxes), C, size, size): the ``size``×``size`` windows at the top-left corners ``boxes``."""
    return torch.stack([image[..., r:r + size, c:c + size] for r, c in boxes])
