"""``lightning_modules/nets/object_size.py``: the dds paper's object size from a CAM (§2.2), by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_modules.nets.object_size import object_box


def test_object_size_of_a_gaussian_cam_by_hand():
    # CAM exp(−r²/(2σ²)) with σ = 10 on a 101×101 grid centred at (50, 50).
    # Central region r² ≤ 2σ² ln(1/0.9) = 21.07 → |x|, |y| ≤ 4: box half-side 4.
    # Grow while the square's corner (h, h) stays ≥ 0.5: 2h² ≤ 2σ² ln 2 = 138.6 → h ≤ 8 → side 17.
    y, x = np.mgrid[0:101, 0:101] - 50
    cam = np.exp(-(x**2 + y**2) / 200.0)
    box = object_box(cam)
    assert box.central == (46, 46, 54, 54)
    assert box.grown == (42, 42, 58, 58) and box.size == pytest.approx(17.0)


def test_object_box_stops_at_the_image_border():
    cam = np.ones((9, 9))
    cam[4, 4] = 1.0
    assert object_box(cam).size == pytest.approx(math.sqrt(81))


def test_a_constant_activation_map_is_all_ones_and_boxes_the_whole_image():
    """A tiny stage-1 model can have all-zero features at the CAM layer; Obj is then the whole image's side."""
    from lightning_modules.nets.cam import activation_maps
    from lightning_modules.nets.object_size import object_box

    features = torch.zeros(1, 4, 2, 2, requires_grad=True)
    logits = features.mean(dim=(2, 3)) @ torch.ones(4, 3)
    cams, _ = activation_maps(features, logits, (8, 6))
    assert torch.equal(cams, torch.ones(1, 8, 6))
    assert object_box(cams[0].numpy()).size == pytest.approx((8 * 6) ** 0.5)
