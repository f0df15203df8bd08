"""Dihedral test-time augmentation (dermlab.imaging.tta): the eight views by hand."""

from __future__ import annotations

import pytest
import torch

from dermlab.imaging.tta import DIHEDRAL, dihedral_mean, dihedral_transform, dihedral_views


def test_the_eight_views_of_a_2x2_image_by_hand():
    # image [[a, b], [c, d]] = [[1, 2], [3, 4]]; each element of D4 written out by hand
    image = torch.tensor([[1, 2], [3, 4]])
    expected = {
        "identity": [[1, 2], [3, 4]],
        "hflip": [[2, 1], [4, 3]],           # columns reversed
        "vflip": [[3, 4], [1, 2]],           # rows reversed
        "rot180": [[4, 3], [2, 1]],
        "transpose": [[1, 3], [2, 4]],
        "transpose_hflip": [[3, 1], [4, 2]],  # a 90° clockwise rotation
        "transpose_vflip": [[2, 4], [1, 3]],  # a 90° anticlockwise rotation
        "anti_transpose": [[4, 2], [3, 1]],
    }
    views = dihedral_views(image)
    assert [v.tolist() for v in views] == [expected[name] for name in DIHEDRAL]
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8  # all distinct: the whole group


def test_views_act_on_the_last_two_dimensions_of_multi_view_batches():
    images = torch.arange(2 * 3 * 1 * 4 * 4, dtype=torch.float32).view(2, 3, 1, 4, 4)  # (B, V, C, H, W)
    for index in range(8):
        whole = dihedral_transform(images, index)
        for b in range(2):
            for v in range(3):
                assert torch.equal(whole[b, v, 0], dihedral_transform(images[b, v, 0], index))


def test_transposes_need_square_images_and_the_index_is_checked():
    with pytest.raises(ValueError, match="square"):
        dihedral_transform(torch.zeros(1, 3, 4, 6), 4)
    assert dihedral_transform(torch.zeros(1, 3, 4, 6), 1).shape == (1, 3, 4, 6)  # flips alone are fine
    with pytest.raises(ValueError, match="0-7"):
        dihedral_transform(torch.zeros(1, 3, 4, 4), 8)


def test_dihedral_mean_of_a_plain_function():
    # predict = the top-left pixel as a 1-column "prediction"; over D4 the top-left corner visits the four
    # corners twice each, so the mean is the mean of the four corners: (1 + 3 + 7 + 9) / 4 = 5
    image = torch.arange(1.0, 10.0).view(1, 1, 3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]
    assert dihedral_mean(lambda x: x[:, 0, 0, :1], image).item() == pytest.approx(5.0)
