"""Patient metadata as users give it beside images (dermlab/files/patient_csv.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from dermlab.errors import DataError
from dermlab.files.patient_csv import patient_table


def test_a_frame_with_an_image_column_is_put_in_the_images_order():
    frame = pd.DataFrame({"image_id": ["ISIC_2", "ISIC_1"], "age": [50, 20], "sex": ["female", "male"]})
    table = patient_table(frame, ["age", "sex"], ["d/ISIC_1.jpg", "d/ISIC_2.jpg"], "the metadata given")
    assert table["age"].tolist() == [20.0, 50.0] and table["sex"].tolist() == ["male", "female"]
    with pytest.raises(DataError, match=r"image_id column does not name the images given \(no row for d/ISIC_3.jpg"):
        patient_table(frame, ["age"], ["d/ISIC_1.jpg", "d/ISIC_3.jpg"], "the metadata given")
    plain = frame.drop(columns="image_id")  # no image column: taken to be in the images' order
    assert patient_table(plain, ["age"], ["a", "b"], "x")["age"].tolist() == [50.0, 20.0]
