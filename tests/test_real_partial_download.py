"""HAM10000 on its real metadata (10,015 rows) with only the 75 real images of ../shared/data: a partial download."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from datamodules import HAM10000DataModule
from dermlab.errors import DataError
from dermlab.files.masks import read_mask
from tests.conftest import HAM_METADATA

HAM = HAM_METADATA.parent
MASKS = HAM / "HAM10000_segmentations_lesion_tschandl"
pytestmark = pytest.mark.skipif(not HAM_METADATA.is_file(), reason="../shared/data not present")


def ham(**kwargs):
    return HAM10000DataModule(str(HAM), image_size=64, num_workers=0, **kwargs)


def test_absent_images_stop_with_one_message_naming_the_count_and_the_option():
    with pytest.raises(DataError) as error:
        ham().setup("fit")
    message = str(error.value)
    assert message.startswith("9,940 image(s) listed in '") and "of 10,015 listed" in message
    assert "train 5,960 of 6,008, val 1,993 of 2,003, test 1,987 of 2,004" in message
    assert message.endswith("set on_bad_image: skip to go on with the 75 present ones.")


def test_skip_goes_on_with_the_present_images_and_one_warning(caplog, tmp_path):
    data = ham(on_bad_image="skip", batch_size=48, cache_dir=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="datamodules.base"):
        data.setup()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "left out 9,940 of 10,015 images" in warnings[0]
    assert "going on with the 75 present ones" in warnings[0] and len(warnings[0]) < 600
    sizes = {s: len(data.table(s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 48, "val": 10, "test": 17}
    assert data.split_audit.to_json()["leak"] is False
    batch = next(iter(data.train_dataloader()))  # the 48 training images hold all seven classes
    assert batch["image"].shape == (48, 3, 64, 64)
    assert np.bincount(batch["label"].numpy(), minlength=7).tolist() == [5, 8, 8, 7, 9, 5, 6]


@pytest.mark.parametrize("image_id, area", [("ISIC_0024311", 79566), ("ISIC_0027001", 55103),
                                             ("ISIC_0027287", 155747), ("ISIC_0027533", 53625),
                                             ("ISIC_0027800", 37627)])
def test_the_real_masks_read_with_their_lesion_area(image_id, area):
    mask = read_mask(MASKS / f"{image_id}_segmentation.png", shape=(450, 600))
    assert mask.dtype == bool and int(mask.sum()) == area
    assert any((HAM / part / f"{image_id}.jpg").is_file() for part in ("HAM10000_images_part_1",
                                                                        "HAM10000_images_part_2"))
