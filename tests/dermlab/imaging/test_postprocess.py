"""``dermlab/imaging/postprocess.py``: the dense CRF and the morphology that clean a predicted mask."""

from __future__ import annotations

import numpy as np

from dermlab.imaging.postprocess import PostProcess, clean_mask, postprocess
from tests.helpers.segmentation import lesion_picture


def test_crf_and_morphology_keep_a_clean_mask_and_remove_an_isolated_speck():
    image, disc = lesion_picture()
    clean = np.where(disc, 0.9, 0.1)
    assert np.array_equal(postprocess(image, clean), disc)
    specked = clean.copy()
    specked[3:5, 3:5] = 0.97  # a confident 2×2 speck far from the lesion
    assert (specked > 0.5).sum() == disc.sum() + 4
    assert np.array_equal(postprocess(image, specked), disc)
    holed = disc.copy()
    holed[22:26, 30:34] = False
    assert np.array_equal(clean_mask(holed, PostProcess(crf=False)), disc)  # holes filled


def test_island_removal_without_keep_largest_uses_the_area_fraction():
    mask = np.zeros((100, 100), bool)
    mask[10:40, 10:40] = True  # 900 px
    mask[70:80, 70:80] = True  # 100 px = 1 % of the image
    settings = PostProcess(crf=False, keep_largest=False, min_island=0.005)
    assert clean_mask(mask, settings).sum() == 1000
    assert clean_mask(mask, PostProcess(crf=False, keep_largest=False, min_island=0.02)).sum() == 900
