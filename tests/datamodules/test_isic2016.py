"""``datamodules/isic2016.py``: the real ground truth, masks missing at set-up, and no extra training images."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pandas as pd
import pytest

from datamodules import ISIC2016DataModule
from dermlab.errors import DataError
from tests.conftest import (
    SHARED_DATA,  # real files (see its SOURCES.md)
    touch_images,
)
from tests.helpers.real_metadata import HAM


def test_extra_training_images_are_refused_by_a_data_set_without_the_format(synthetic, tmp_path):
    from datamodules import ISIC2016DataModule
    from dermlab.errors import DataError

    with pytest.raises(DataError, match="does not take extra training images"):
        data = ISIC2016DataModule(str(synthetic("isic2016")), val_size=4, extra_train_csv=str(tmp_path / "x.csv"))
        data.table("train")


@pytest.mark.real_data
@pytest.mark.skipif(not HAM.is_file(), reason="../shared/data not present")
def test_isic2016_real_ground_truth(tmp_path):
    csv = SHARED_DATA / "isic2016" / "ISBI2016_ISIC_Part3_Training_GroundTruth.csv"
    shutil.copy(csv, tmp_path)
    touch_images(tmp_path / "ISBI2016_ISIC_Part3_Training_Data", pd.read_csv(csv, header=None)[0])
    data = ISIC2016DataModule(str(tmp_path))  # dds split: 649 / 251
    assert len(data.table("train")) == 649 and len(data.table("val")) == 251
    assert np.bincount(data.table("pool").labels).tolist() == [727, 173]


# --- case 9: every listed mask exists at set-up -----------------------------------------------------------------------

def test_isic2016_missing_mask_fails_at_setup_naming_it(copy_of):
    root = copy_of("isic2016")
    masks = root / "ISBI2016_ISIC_Part1_Training_GroundTruth"
    lost = sorted(masks.iterdir())[0]
    lost.unlink()
    data = ISIC2016DataModule(str(root), val_size=4, with_masks=True, image_size=32, num_workers=0)
    with pytest.raises(DataError, match=rf"1 mask\(s\) are missing from '.*{masks.name}' \(e\.g\. {lost.name}\)"):
        data.setup("fit")


def test_missing_mask_is_skipped_with_a_log_under_on_bad_image_skip(copy_of, caplog):
    root = copy_of("isic2016")
    lost = sorted((root / "ISBI2016_ISIC_Part1_Training_GroundTruth").iterdir())[0]
    lost.unlink()
    data = ISIC2016DataModule(str(root), val_size=4, with_masks=True, on_bad_image="skip", num_workers=0)
    with caplog.at_level(logging.WARNING):
        ids = data.table("train").ids + data.table("val").ids
    assert lost.name.removesuffix("_Segmentation.png") not in ids
    assert "left out 1 of" in caplog.text
