"""The real ISIC 2019 / 2020 truth files (../shared/data) and what the tests need beside them."""

from __future__ import annotations

import pytest

from tests.conftest import SHARED_DATA

TRUTH_2019 = SHARED_DATA / "isic2019" / "ISIC_2019_Training_GroundTruth.csv"

TRUTH_2020 = SHARED_DATA / "isic2020" / "ISIC_2020_Training_GroundTruth.csv"

DUPLICATES_2020 = SHARED_DATA / "isic2020" / "ISIC_2020_Training_Duplicates.csv"

needs_2019 = pytest.mark.skipif(not TRUTH_2019.is_file(), reason=f"real truth absent: {TRUTH_2019}")

needs_2020 = pytest.mark.skipif(not (TRUTH_2020.is_file() and DUPLICATES_2020.is_file()),
                                reason=f"real truth or duplicates list absent: {TRUTH_2020.parent}")


def one_image(folder) -> None:
    """The folder exists and holds an image (the loaders refuse an empty folder; tables are read, not decoded)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "placeholder.jpg").touch()
