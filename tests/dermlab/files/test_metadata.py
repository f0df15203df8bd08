"""``dermlab/files/metadata.py``: age bands and the attributes of a metadata table."""

from __future__ import annotations

import numpy as np
import pytest

from dermlab.errors import DataError
from dermlab.files.metadata import age_band, attributes


@pytest.mark.parametrize(("age", "band"), [(0, "0-29"), (29.9, "0-29"), (30, "30-44"), ("45.0", "45-59"),
                                           (74, "60-74"), (75, "75+"), (85, "75+"), (None, "unknown"),
                                           (np.nan, "unknown"), ("", "unknown"), ("unknown", "unknown")])
def test_age_bands(age, band):
    assert age_band(age) == band


def test_attributes_name_a_bad_age_by_file_and_row():
    frame = attributes(["a", "b"], "meta.csv", age=[40, None], sex=["male", " "])
    assert frame.to_dict("index") == {"a": {"age_band": "30-44", "sex": "male"},
                                      "b": {"age_band": "unknown", "sex": "unknown"}}
    with pytest.raises(DataError, match="'meta.csv' row 3 .b.: age 'forty' is not a number"):
        attributes(["a", "b"], "meta.csv", age=[40, "forty"])
