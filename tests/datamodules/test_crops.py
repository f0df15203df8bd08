"""``datamodules/crops.py``: the patch paper's ordered crops (§II-D) and batches that carry all crops of an image."""

from __future__ import annotations

import pytest
import torch

from datamodules.crops import ordered_crop_boxes, ordered_crops
from dermlab.files.io import load_rgb
from tests.helpers.real_ham import SHARED_HAM


def test_nine_ordered_crops_on_600x450_have_the_papers_centres():
    boxes = ordered_crop_boxes(450, 600, 9, 224)
    centres = {(top + 112, left + 112) for top, left in boxes}
    assert centres == {(r, c) for r in (112, 225, 338) for c in (112, 300, 488)}
    assert boxes[0] == (0, 0) and boxes[-1] == (226, 376)  # row by row, from the top-left corner


def test_five_crops_are_the_corners_and_the_centre():
    assert ordered_crop_boxes(450, 600, 5, 224) == [(0, 0), (0, 376), (113, 188), (226, 0), (226, 376)]


def test_sixteen_crops_spread_evenly_and_overlap():
    boxes = ordered_crop_boxes(450, 600, 16, 224)
    rows, cols = sorted({b[0] for b in boxes}), sorted({b[1] for b in boxes})
    assert rows == [0, 75, 151, 226] and cols == [0, 125, 251, 376]
    assert all(b - a < 224 for a, b in zip(cols, cols[1:], strict=False)) and len(boxes) == 16  # neighbours overlap


def test_crops_too_large_or_an_odd_count_are_refused():
    from dermlab.errors import DataError

    with pytest.raises(DataError, match="smaller than the 224 px crops"):
        ordered_crop_boxes(200, 600, 9, 224)
    with pytest.raises(ValueError, match="square grid"):
        ordered_crop_boxes(450, 600, 7, 224)


@pytest.mark.real_data
def test_ordered_crops_of_a_real_ham_image():
    path = next((SHARED_HAM / "HAM10000_images_part_1").glob("*.jpg"))
    image = torch.from_numpy(load_rgb(path).copy()).permute(2, 0, 1)
    assert tuple(image.shape) == (3, 450, 600)
    crops = ordered_crops(image, 9, 224)
    assert tuple(crops.shape) == (9, 3, 224, 224)
    assert torch.equal(crops[4], image[:, 113:337, 188:412]) and torch.equal(crops[8], image[:, 226:, 376:])


def test_a_batch_carries_all_crops_of_an_image(synthetic):
    from datamodules import HAM10000DataModule

    data = HAM10000DataModule(str(synthetic("ham10000")), split="patch", image_size=16, batch_size=4, num_workers=0,
                              train_transforms="experiments/base/augment/patch.yaml",
                              eval_transforms="experiments/base/augment/full_image.yaml", train_crops=5,
                              eval_crops=9)
    data.setup("fit")
    assert tuple(next(iter(data.train_dataloader()))["image"].shape) == (4, 5, 3, 16, 16)
    assert tuple(next(iter(data.val_dataloader()))["image"].shape)[:3] == (4, 9, 3)
    assert data.dataset("val", views=1)[0]["image"].shape == (3, 24, 32)  # one whole image (32 × 24 synthetic)
