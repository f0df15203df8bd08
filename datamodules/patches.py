"""Multi-scale central patches, ``arl`` paper §IV-B (Fig. 4).

"We randomly extracted 60 rectangular image patches from the central part of each image at different
scales (1/5, 2/5, 3/5 and 4/5 of original image size) ... and resized them to 224×224 using bilinear
interpolation"; at test time nine patches by the same rule, scores averaged.

:class:`CentralScalePatch` draws one such patch per call, online: a scale s from ``scales``, a
rectangle of s·H × s·W (the image's aspect), placed at random with its centre inside the central part
of the image — the middle half of the positions a patch of that size can take (our reading of
"central part"; ``centre_range`` sets the fraction). The suite draws the 60 patches per image as
``train_repeats: 60`` passes through this random transform and the 9 test patches as
``eval_views: 9`` (see :class:`datamodules.datasets.image_dataset.ImageTableDataset`), so nothing is written to disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import numpy as np
from typing_extensions import override

SCALES = (0.2, 0.4, 0.6, 0.8)


def patch_box(height: int, width: int, scale: float, u: float, v: float, centre_range: float = 0.5
              ) -> tuple[int, int, int, int]:
    """(top, left, patch height, patch width) for uniform draws ``u``, ``v`` in [0, 1)."""
    h, w = max(1, round(scale * height)), max(1, round(scale * width))
    free_y, free_x = height - h, width - w
    top = round(free_y * ((1 - centre_range) / 2 + centre_range * u))
    left = round(free_x * ((1 - centre_range) / 2 + centre_range * v))
    return top, left, h, w


class CentralScalePatch(A.DualTransform):
    """A random s·H × s·W patch from the centre of the image (and its masks), s drawn from ``scales``."""

    def __init__(self, scales: Sequence[float] = SCALES, centre_range: float = 0.5, p: float = 1.0):
        super().__init__(p=p)
        if not scales or not all(0 < s <= 1 for s in scales) or not 0 <= centre_range <= 1:
            raise ValueError(f"scales must lie in (0, 1] and centre_range in [0, 1]; got {scales}, {centre_range}")
        self.scales, self.centre_range = tuple(scales), centre_range

    @override
    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        """``{"box": (top, left, height, width)}`` of this call's patch, in pixels of the input image."""
        height, width = params["shape"][:2]
        scale = self.scales[int(self.py_random.random() * len(self.scales))]
        box = patch_box(height, width, scale, self.py_random.random(), self.py_random.random(), self.centre_range)
        return {"box": box}

    @override
    def apply(self, img: np.ndarray, box: tuple[int, int, int, int], **params: Any) -> np.ndarray:
        top, left, h, w = box
        return np.ascontiguousarray(img[top:top + h, left:left + w])

    @override
    def apply_to_mask(self, mask: np.ndarray, box: tuple[int, int, int, int], **params: Any) -> np.ndarray:
        return self.apply(mask, box)

    @override
    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scales", "centre_range")
