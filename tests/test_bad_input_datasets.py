"""Bad input in every layout: a clear message naming the file and the fix, or an explicit, logged skip."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from datamodules import HAM10000DataModule, ISIC2018SegmentationDataModule, ISIC2018Task3DataModule, VitiligoDataModule
from dermlab.errors import DataError
from dermlab.files.io import _CONVERTED_MODES, load_rgb


def ham(root, **kwargs):
    return HAM10000DataModule(str(root), split="kfold", n_folds=3, image_size=32, num_workers=0, **kwargs)


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "CMYK", "P"])
def test_other_image_modes_are_converted_and_said_once(tmp_path, caplog, mode):
    gradient = np.linspace(0, 1, 12 * 16).reshape(12, 16)
    if mode == "I;16":
        image = Image.fromarray((gradient * 65535).astype(np.uint16))
    else:
        image = Image.fromarray((gradient * 255).astype(np.uint8)).convert(mode)
    path = tmp_path / f"x.{'tif' if mode == 'CMYK' else 'png'}"
    image.save(path)
    _CONVERTED_MODES.discard(image.mode)
    with caplog.at_level(logging.WARNING):
        first, second = load_rgb(path), load_rgb(path)
    assert first.shape == (12, 16, 3) and first.dtype == np.uint8 and np.array_equal(first, second)
    assert caplog.text.count(f"converting {image.mode} images") == 1
    if mode == "I;16":  # 16-bit scaled to 8-bit, not clipped
        assert first.max() == 255 and first[0, 0, 0] == 0


def test_mask_of_the_wrong_size(copy_of):
    root = copy_of("isic2018_task1")
    mask = next((root / "ISIC2018_Task1_Training_GroundTruth").glob("*.png"))
    Image.new("L", (7, 5)).save(mask)
    data = ISIC2018SegmentationDataModule(str(root), num_workers=0)
    index = data.table("train").ids.index(mask.name.removesuffix("_segmentation.png"))
    with pytest.raises(DataError, match=f"mask '.*{mask.name}' is 7x5 but its image is 32x24"):
        data.dataset("train")[index]


def test_missing_mask(copy_of):
    root = copy_of("isic2018_task1")
    mask = next((root / "ISIC2018_Task1_Training_GroundTruth").glob("*.png"))
    mask.unlink()
    with pytest.raises(DataError, match=f"1 mask\\(s\\) are missing .*{mask.name}"):
        ISIC2018SegmentationDataModule(str(root)).table("train")


def test_renamed_column(copy_of):
    root = copy_of("ham10000")
    csv = root / "HAM10000_metadata.csv"
    csv.write_text(csv.read_text().replace("lesion_id,image_id,dx,", "lesion_id,image_id,diagnosis,", 1))
    with pytest.raises(DataError, match="HAM10000_metadata.csv' lacks column\\(s\\) dx"):
        ham(root).table("train")


def test_duplicate_ids(copy_of):
    root = copy_of("ham10000")
    csv = root / "HAM10000_metadata.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([*lines, lines[1]]) + "\n")
    with pytest.raises(DataError, match=f"lists image_id {lines[1].split(',')[1]} more than once"):
        ham(root).table("train")


def test_one_hot_row_that_does_not_sum_to_one(copy_of):
    root = copy_of("isic2018_task3")
    csv = root / "ISIC2018_Task3_Training_GroundTruth.csv"
    table = pd.read_csv(csv)
    table.loc[3, "DF"] = 1.0 - table.loc[3, "DF"]  # now sums to 0 or 2
    table.to_csv(csv, index=False)
    with pytest.raises(DataError, match=f"row 5 \\({table.image[3]}\\) is not one-hot"):
        ISIC2018Task3DataModule(str(root)).table("train")


def test_empty_class_folder(copy_of):
    root = copy_of("vitiligo")
    for path in (root / "val" / "Yes").iterdir():
        path.unlink()
    with pytest.raises(DataError, match="class folder '.*val/Yes' holds no images"):
        VitiligoDataModule(str(root)).table("val")


def test_missing_image_stops_or_is_skipped_with_a_log(copy_of, caplog):
    root = copy_of("ham10000")
    victim = next((root / "HAM10000_images_part_1").glob("*.jpg"))
    victim.unlink()
    with pytest.raises(DataError, match=f"1 image\\(s\\) listed in .* are missing .*{victim.name}.*on_bad_image: skip"):
        ham(root).table("pool")
    with caplog.at_level(logging.WARNING):
        pool = ham(root, on_bad_image="skip").table("pool")
    assert len(pool) == 23 and victim.stem not in pool.ids
    assert "left out 1 of 24 images" in caplog.text and victim.stem in caplog.text


def test_corrupt_image_is_skipped_with_a_log(copy_of, caplog):
    root = copy_of("ham10000")
    victim = next((root / "HAM10000_images_part_2").glob("*.jpg"))
    victim.write_bytes(victim.read_bytes()[:100])
    with caplog.at_level(logging.WARNING):
        pool = ham(root, on_bad_image="skip").table("pool")
    assert victim.stem not in pool.ids and len(pool) == 23 and victim.stem in caplog.text


def test_unknown_diagnosis(copy_of):
    root = copy_of("ham10000")
    csv = root / "HAM10000_metadata.csv"
    text = csv.read_text().splitlines()
    fields = text[1].split(",")
    fields[2] = "scc"
    csv.write_text("\n".join([text[0], ",".join(fields), *text[2:]]) + "\n")
    with pytest.raises(DataError, match="column 'dx' holds \\['scc'\\]"):
        ham(root).table("pool")
