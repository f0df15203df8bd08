"""Rotation by exactly one of 90°, 180°, 270° (``isic2018`` paper 002 §1–2).

§1: "randomly rotate the image with 90, 180, 270 degrees". albumentations' ``RandomRotate90`` draws its
factor from {0, 1, 2, 3} *when applied*, so with ``p`` = 0.75 it leaves 0.25 + 0.75 / 4 ≈ 44 % of the images
unrotated, and even with ``p`` = 1 a quarter. :class:`RandomQuarterTurn` draws from {1, 2, 3} only; ``p`` is
the probability that a rotation happens at all (the paper gives none; its pipelines use 1).
"""

from __future__ import annotations

import albumentations as A
from typing_extensions import override


class RandomQuarterTurn(A.RandomRotate90):
    """Rotate image and masks together by k·90° with k uniform in {1, 2, 3} (never 0), with probability ``p``.

    Same targets and geometry as ``A.RandomRotate90`` (counter-clockwise ``np.rot90`` of (H, W, C) images and
    (H, W) masks; H and W swap for k = 1, 3); only the draw of k differs.
    """

    @override
    def get_params(self) -> dict[str, int]:
        return {"factor": self.py_random.randint(1, 3)}
