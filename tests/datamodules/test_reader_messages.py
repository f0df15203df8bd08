"""Readers name the folder and the fix where a download is laid out otherwise than the official release."""

from __future__ import annotations

import pytest

from datamodules.datasets import ISIC2018SegmentationReader
from dermlab.errors import DataError


def test_isic2018_images_without_their_official_names_are_refused_not_read_as_an_empty_split(copy_of):
    root = copy_of("isic2018_task1")
    folder = root / "ISIC2018_Task1-2_Test_Input"
    images = sorted(folder.glob("ISIC_*.jpg"))
    for index, image in enumerate(images):
        image.rename(folder / f"lesion {index}.jpg")  # e.g. renamed by a download manager
    with pytest.raises(DataError, match=r"holds \d+ image\(s\) but none named ISIC_<7 digits> \(e.g. lesion 0.jpg"):
        ISIC2018SegmentationReader(root, task=1).table("test")
    assert len(ISIC2018SegmentationReader(root, task=1).table("train")) > 0  # the other splits read as before
