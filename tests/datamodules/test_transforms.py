"""Colour constancy by hand and the papers' pipelines from experiments/base/augment."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.transforms import ShadesOfGrey, build_transforms
from tests.conftest import REPO


def test_shades_of_grey_by_hand():
    # A 3x3 image whose red channel is twice the others everywhere: e ∝ (2, 1, 1) for any power,
    # |e| = √6, gains 1/(√3 e_c) → red × √6/(2√3) = 1/√2, green/blue × √6/√3 = √2.
    image = np.zeros((3, 3, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 100, 50, 50
    out = ShadesOfGrey(power=6, p=1.0)(image=image)["image"]
    assert out[0, 0].tolist() == [int(100 / np.sqrt(2)), int(50 * np.sqrt(2)), int(50 * np.sqrt(2))]


def test_shades_of_grey_leaves_grey_images_alone():
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.integers(0, 200, (5, 5, 1), dtype=np.uint8), 3, axis=2)
    assert np.abs(ShadesOfGrey()(image=grey)["image"].astype(int) - grey).max() <= 1


@pytest.mark.parametrize("name,shape", [("dds", (224, 224)), ("arl", (224, 224)), ("isic2018_seg", (224, 224)),
                                        ("isic2018_triplet", (256, 256)), ("patch", (450, 600)),
                                        ("weighting", (224, 224))])  # follows image_size (299 in experiments/weighting)
def test_paper_pipelines_build_and_move_masks_with_images(name, shape):
    pipeline = build_transforms(str(REPO / "experiments" / "base" / "augment" / f"{name}.yaml"), 224, train=True)
    image = np.random.default_rng(0).integers(0, 255, (450, 600, 3), dtype=np.uint8)
    mask = np.zeros((450, 600), np.uint8)
    out = pipeline(image=image, masks=[mask])
    assert tuple(out["image"].shape) == (3, *shape) and np.asarray(out["masks"][0]).shape == shape
